"""The ``paper`` rule reproduces the study paper's categorical p-values from its own counts.

Source: Liu Q, Li J, You N, et al. (2021). Camrelizumab combined with sorafenib versus
sorafenib alone in patients with advanced hepatocellular carcinoma: a retrospective study.
Research Square preprint, doi:10.21203/rs.3.rs-449525/v1 (SPSS 25), Tables 1-3; p-values printed to 3 decimals. Before PSM the arms have 35 (combined
therapy, "treated") and 65 patients; after PSM 34 and 34. Every row is a 2x2 table: the count
in the first level of the row (e.g. male, HBV carrier, ECOG 0, Child-Pugh A, responders, AE of
any grade) per arm, out of the arm size.

Which rule: tried Pearson, Yates, Fisher, Fisher-if-expected<5, Yates-if-expected<t for
t in 4.5..6, Yates-if-observed<5 and combinations. "Yates where an expected count is < 5 or an
observed count is < 3, Pearson otherwise" reproduces 85 of the 102 rows (Yates-if-expected<5
alone: 84; Fisher-if-expected<5: 69; Pearson: 56; Yates: 48; Fisher: 32). The 17 rows no rule
reproduces are listed in EXCEPTIONS with the reason; a test checks that exactly these fail.
"""

import numpy as np
import pytest

from analysis.comparisons import categorical
from analysis.comparisons.response import compare_adverse_events, compare_responses

BEFORE = (35, 65)
AFTER = (34, 34)

# (row id, treated count, control count, arm sizes, printed p)
TABLE_1 = [
    ("T1-before-sex(male)", 32, 54, BEFORE, 0.398),
    ("T1-after-sex(male)", 31, 31, AFTER, 1.000),
    ("T1-before-hbv", 33, 52, BEFORE, 0.106),
    ("T1-after-hbv", 32, 33, AFTER, 1.000),
    ("T1-before-cirrhosis", 20, 41, BEFORE, 0.562),
    ("T1-after-cirrhosis", 20, 25, AFTER, 0.200),
    ("T1-before-ecog0", 7, 15, BEFORE, 0.723),
    ("T1-after-ecog0", 6, 5, AFTER, 0.742),
    ("T1-before-child_pugh_a", 2, 8, BEFORE, 0.485),
    ("T1-after-child_pugh_a", 2, 3, AFTER, 1.000),
    ("T1-before-bclc_b", 11, 15, BEFORE, 0.364),
    ("T1-after-bclc_b", 11, 8, AFTER, 0.417),
    ("T1-before-afp_lt400", 17, 32, BEFORE, 0.950),
    ("T1-after-afp_lt400", 16, 13, AFTER, 0.462),
    ("T1-before-solitary", 12, 29, BEFORE, 0.316),
    ("T1-after-solitary", 12, 14, AFTER, 0.618),
    ("T1-before-macrovascular", 15, 33, BEFORE, 0.450),
    ("T1-after-macrovascular", 15, 19, AFTER, 0.332),
    ("T1-before-extrahepatic", 22, 40, BEFORE, 0.897),
    ("T1-after-extrahepatic", 21, 23, AFTER, 0.612),
    ("T1-before-surgery", 11, 11, BEFORE, 0.095),
    ("T1-after-surgery", 10, 8, AFTER, 0.582),
    ("T1-before-ablation", 1, 2, BEFORE, 0.950),
    ("T1-after-ablation", 1, 1, AFTER, 1.000),
    ("T1-before-tace", 18, 33, BEFORE, 1.000),
    ("T1-after-tace", 17, 20, AFTER, 0.465),
]
TABLE_2 = [
    ("T2-before-objective_response", 6, 2, BEFORE, 0.037),
    ("T2-after-objective_response", 6, 0, AFTER, 0.010),
    ("T2-before-disease_control", 24, 47, BEFORE, 0.695),
    ("T2-after-disease_control", 24, 24, AFTER, 1.000),
    ("T2-before-complete_response", 0, 0, BEFORE, 1.000),
    ("T2-after-complete_response", 0, 0, AFTER, 1.000),
    ("T2-before-partial_response", 6, 2, BEFORE, 0.037),
    ("T2-after-partial_response", 6, 0, AFTER, 0.010),
    ("T2-before-stable_disease", 18, 45, BEFORE, 0.079),
    ("T2-after-stable_disease", 18, 24, AFTER, 0.134),
    ("T2-before-progressive_disease", 11, 18, BEFORE, 0.695),
    ("T2-after-progressive_disease", 10, 10, AFTER, 1.000),
]
# name: before (treated any, treated g3-4, control any, control g3-4, p any, p g3-4),
#       after (the same six)
TABLE_3_PRINTED = {
    "all": ((33, 14, 59, 27, 0.817, 0.881), (32, 14, 30, 13, 0.669, 0.669)),
    "hand_foot_syndrome": ((21, 2, 34, 4, 0.461, 1.000), (20, 2, 16, 0, 0.331, 0.331)),
    "hypertension": ((3, 0, 8, 2, 0.815, 0.765), (3, 0, 3, 1, 1.000, 1.000)),
    "diarrhea": ((10, 4, 23, 2, 0.489, 0.216), (9, 4, 13, 1, 0.300, 0.300)),
    "rash": ((8, 1, 7, 1, 0.106, 1.000), (7, 1, 3, 1, 0.171, 0.171)),
    "fatigue": ((8, 0, 18, 0, 0.599, 1.000), (7, 0, 7, 0, 1.000, 1.000)),
    "abdominal_pain": ((4, 0, 12, 3, 0.360, 0.499), (4, 0, 5, 0, 1.000, 1.000)),
    "nausea_vomiting": ((3, 0, 5, 0, 1.000, 1.000), (3, 0, 1, 0, 0.606, 0.606)),
    "fever": ((2, 1, 4, 0, 1.000, 0.752), (2, 1, 1, 0, 1.000, 1.000)),
    "cough": ((2, 0, 3, 0, 1.000, 1.000), (2, 0, 1, 0, 1.000, 1.000)),
    "gingival_hemorrhage": ((3, 0, 2, 0, 0.471, 1.000), (3, 0, 1, 0, 0.606, 0.606)),
    "elevated_transaminase": ((11, 5, 13, 8, 0.202, 1.000), (11, 5, 7, 5, 0.410, 0.410)),
    "hyperbilirubinaemia": ((14, 4, 19, 7, 0.275, 1.000), (14, 4, 13, 5, 0.804, 0.804)),
    "leukopenia": ((8, 1, 8, 1, 0.170, 1.000), (8, 1, 3, 0, 0.100, 0.100)),
    "thrombocytopenia": ((17, 1, 14, 2, 0.005, 1.000), (17, 1, 7, 1, 0.011, 0.011)),
    "anemia": ((13, 0, 12, 3, 0.040, 0.105), (13, 0, 6, 3, 0.059, 0.059)),
}
TABLE_3 = [
    (f"T3-{period}-{name}-{grade}", counts[t], counts[c], arms, counts[p])
    for name, (before, after) in TABLE_3_PRINTED.items()
    for period, counts, arms in (("before", before, BEFORE), ("after", after, AFTER))
    for grade, t, c, p in (("any", 0, 2, 4), ("g34", 1, 3, 5))
]
ROWS = TABLE_1 + TABLE_2 + TABLE_3

_DUPLICATED = (
    "the after-PSM grade 3-4 column repeats the any-grade p-value ({printed}) in every row of"
    " Table 3; the grade 3-4 counts {treated}/34 vs {control}/34 give another p-value"
)
#: Rows whose printed p-value the paper rule cannot reproduce, with the reason.
EXCEPTIONS = {
    "T1-before-ablation": "p-values of the ablation and TACE rows are swapped: 1/35 vs 2/65"
    " gives Yates 1.000 (printed under TACE; thrombocytopenia grade 3-4 has the same counts and"
    " prints 1.000) and TACE 18/35 vs 33/65 gives Pearson 0.950 (printed under ablation)",
    "T1-before-tace": "swapped with the ablation row (see there); the printed 47.4% is not"
    " 18/35 (51.4%) and 18/38 gives no printed value either (Pearson 0.739, Yates 0.898)",
    "T2-after-objective_response": "6/34 vs 0/34 printed 0.010 = Pearson (0.0103) although"
    " expected counts are 3 < 5 (Yates 0.033, Fisher 0.025); the after-PSM response table used"
    " Pearson throughout; the text repeats P = 0.010",
    "T2-after-partial_response": "same counts and printed value as objective response after"
    " PSM (Pearson although expected counts are 3)",
    "T3-before-anemia-g34": "0/35 vs 3/65 printed 0.105, which no test gives (Pearson 0.197,"
    " Yates 0.499, Fisher 0.550); abdominal pain grade 3-4 has the same counts and prints 0.499",
    "T3-after-elevated_transaminase-any": "11/34 vs 7/34 printed 0.410 = Yates (0.4096) or"
    " Fisher (0.4101) although every expected count is >= 9 (Pearson 0.272); every other table"
    " with expected counts >= 5 got Pearson",
    **{
        f"T3-after-{name}-g34": _DUPLICATED.format(
            printed=f"{after[4]:.3f}", treated=after[1], control=after[3]
        )
        for name, (_, after) in TABLE_3_PRINTED.items()
        if name
        in (
            "all",
            "hand_foot_syndrome",
            "diarrhea",
            "rash",
            "nausea_vomiting",
            "gingival_hemorrhage",
            "elevated_transaminase",
            "hyperbilirubinaemia",
            "leukopenia",
            "thrombocytopenia",
            "anemia",
        )
    },
}
#: The after-PSM grade 3-4 rows whose duplicated value happens to equal the true one (1.000).
DUPLICATED_BUT_CORRECT = ("hypertension", "fatigue", "abdominal_pain", "fever", "cough")


def _tables(rows):
    """(row, level, arm) tables: level 0 = has the characteristic, arms (treated, control)."""
    table = np.empty((len(rows), 2, 2))
    for i, (_, treated_count, control_count, (n_treated, n_control), _) in enumerate(rows):
        table[i] = [
            [treated_count, control_count],
            [n_treated - treated_count, n_control - control_count],
        ]
    return table


def _p_values(rule, rows=ROWS):
    p_values = categorical.categorical_test(_tables(rows), rule=rule).p_value
    return dict(zip((row[0] for row in rows), p_values))


def _failures(rule):
    p_values = _p_values(rule)
    return {row[0] for row in ROWS if round(float(p_values[row[0]]), 3) != row[4]}


PRINTED = {row[0]: row[4] for row in ROWS}
REPRODUCIBLE = [row[0] for row in ROWS if row[0] not in EXCEPTIONS]


def test_row_count():
    assert len(ROWS) == 102 and len(EXCEPTIONS) == 17 and len(REPRODUCIBLE) == 85
    assert set(EXCEPTIONS) <= set(PRINTED)


@pytest.mark.parametrize("row_id", REPRODUCIBLE)
def test_paper_rule_reproduces_printed_p(row_id):
    assert round(float(_p_values("paper")[row_id]), 3) == PRINTED[row_id]


@pytest.mark.parametrize("row_id", sorted(EXCEPTIONS))
def test_known_exception_is_not_reproduced(row_id):
    assert round(float(_p_values("paper")[row_id]), 3) != PRINTED[row_id], EXCEPTIONS[row_id]


def test_exception_list_is_exactly_the_set_that_fails():
    assert _failures("paper") == set(EXCEPTIONS)


def test_design_rule_fails_only_on_hbv_in_addition():
    # DESIGN.md's "Yates where an expected count is < 5, Pearson otherwise"
    assert _failures("yates_if_expected_lt5") == set(EXCEPTIONS) | {"T1-before-hbv"}


@pytest.mark.parametrize(
    "rule", ["pearson", "yates", "fisher", "fisher_if_expected_lt5", "yates_if_expected_lt5"]
)
def test_other_rules_reproduce_fewer_rows(rule):
    assert len(_failures(rule)) > len(_failures("paper"))


def test_swapping_ablation_and_tace_reproduces_both():
    p_values = _p_values("paper")
    assert round(float(p_values["T1-before-ablation"]), 3) == PRINTED["T1-before-tace"]
    assert round(float(p_values["T1-before-tace"]), 3) == PRINTED["T1-before-ablation"]


def test_after_psm_grade3_4_column_duplicates_any_grade():
    p_values = _p_values("paper")
    for name, (_, after) in TABLE_3_PRINTED.items():
        assert after[4] == after[5]
        row_id = f"T3-after-{name}-g34"
        reproduced = round(float(p_values[row_id]), 3) == after[5]
        assert reproduced == (name in DUPLICATED_BUT_CORRECT), name


def test_dose_modification_in_the_text_before_psm():
    # "42.9% vs. 41.5%, P = 0.899 before PSM" = 15/35 vs 27/65 (expected counts >= 14: Pearson).
    # (After PSM "42.9% vs. 41.2%" is not a count out of 34, so it cannot be recomputed.)
    table = np.array([[15.0, 27.0], [20.0, 38.0]])
    assert round(float(categorical.categorical_test(table, rule="paper").p_value), 3) == 0.899


# ------------------------------------------------------------------ end to end, patient level


def _arm_codes(counts_by_code, n):
    codes = np.concatenate([np.full(k, code, dtype=np.int8) for code, k in counts_by_code])
    assert len(codes) == n
    return codes


@pytest.mark.parametrize(
    ("treated_counts", "control_counts", "arms", "printed_orr", "printed_dcr"),
    [
        (((1, 6), (2, 18), (3, 11)), ((1, 2), (2, 45), (3, 18)), BEFORE, 0.037, 0.695),
        (((1, 6), (2, 18), (3, 10)), ((1, 0), (2, 24), (3, 10)), AFTER, 0.010, 1.000),
    ],
    ids=["before", "after"],
)
def test_table_2_from_patient_level_data(
    treated_counts, control_counts, arms, printed_orr, printed_dcr
):
    best = np.concatenate(
        [_arm_codes(treated_counts, arms[0]), _arm_codes(control_counts, arms[1])]
    )
    treated = np.arange(len(best)) < arms[0]
    result = compare_responses(best[None], treated[None], rule="paper")
    orr_id = "T2-before-objective_response" if arms == BEFORE else "T2-after-objective_response"
    np.testing.assert_allclose(result.orr_p_value[0], _p_values("paper")[orr_id], rtol=1e-14)
    assert round(float(result.dcr_p_value[0]), 3) == printed_dcr
    if orr_id not in EXCEPTIONS:
        assert round(float(result.orr_p_value[0]), 3) == printed_orr
    np.testing.assert_allclose(
        result.orr_rate[0], [treated_counts[0][1] / arms[0], control_counts[0][1] / arms[1]]
    )


@pytest.mark.parametrize("period", ["before", "after"])
def test_table_3_from_patient_level_data(period):
    index = 0 if period == "before" else 1
    n_treated, n_control = BEFORE if period == "before" else AFTER
    grades = np.zeros((n_treated + n_control, len(TABLE_3_PRINTED)), dtype=np.int8)
    for j, counts in enumerate(TABLE_3_PRINTED.values()):
        t_any, t_severe, c_any, c_severe = counts[index][:4]
        grades[:t_severe, j] = 3
        grades[t_severe:t_any, j] = 1
        grades[n_treated : n_treated + c_severe, j] = 4
        grades[n_treated + c_severe : n_treated + c_any, j] = 2
    treated = np.arange(n_treated + n_control) < n_treated
    result = compare_adverse_events(grades[None], treated[None], rule="paper")
    p_values = _p_values("paper")
    for j, name in enumerate(TABLE_3_PRINTED):
        for grade, got in (("any", result.any_grade_p_value), ("g34", result.grade3_4_p_value)):
            row_id = f"T3-{period}-{name}-{grade}"
            np.testing.assert_allclose(got[0, j], p_values[row_id], rtol=1e-14)
            if row_id not in EXCEPTIONS:
                assert round(float(got[0, j]), 3) == PRINTED[row_id], row_id
