"""Cohort CSV: round trip, and one clear error naming row/column for each bad file."""

import numpy as np
import pytest

from analysis.cohort import CohortBatch
from sim.generate.cohort_csv import cohort_to_csv, describe_covariate_kinds, near_binary_warnings, read_cohort_csv
from sim.errors import CohortFileError


def small_batch(n=6):
    rng = np.random.default_rng(3)
    pfs = np.round(rng.exponential(6, size=(1, n)), 4)
    return CohortBatch(
        treated=np.array([[1, 0] * (n // 2)], dtype=bool),
        covariates=np.stack([rng.integers(0, 2, (1, n)), np.round(rng.normal(50, 10, (1, n)), 4),
                             rng.integers(0, 3, (1, n))], axis=-1).astype(float),
        covariate_names=("male", "age", "stage"),
        covariate_kinds=("binary", "continuous", "categorical"),
        entry_month=np.round(rng.uniform(0, 24, (1, n)), 4),
        pfs_months=pfs, pfs_event=rng.random((1, n)) < 0.7,
        os_months=pfs + np.round(rng.exponential(3, (1, n)), 4), os_event=rng.random((1, n)) < 0.5,
        best_response=rng.integers(0, 4, (1, n)).astype(np.int8),
        ae_grade=rng.integers(0, 5, (1, n, 2)).astype(np.int8), ae_names=("rash", "fatigue"),
        patient_id=np.arange(1, n + 1)[np.newaxis],
    )


def test_round_trip(tmp_path):
    batch = small_batch()
    path = tmp_path / "c.csv"
    path.write_text(cohort_to_csv(batch))
    back = read_cohort_csv(path, covariate_kinds={"stage": "categorical"})
    assert back.covariate_names == batch.covariate_names
    assert back.covariate_kinds == batch.covariate_kinds
    assert back.ae_names == batch.ae_names
    for name in ("treated", "pfs_event", "os_event", "best_response", "ae_grade", "patient_id"):
        assert np.array_equal(getattr(back, name), getattr(batch, name)), name
    for name in ("covariates", "entry_month", "pfs_months", "os_months"):
        np.testing.assert_allclose(getattr(back, name), getattr(batch, name), atol=5e-5)


HEADER = "patient_id,treated,age,pfs_months,pfs_event,os_months,os_event,best_response"
GOOD = ["1,1,50,3.0,1,5.0,1,PR", "2,0,60,4.0,0,4.0,0,SD", "3,0,55,2.0,1,8.0,1,PD"]

BAD_FILES = {
    "missing column": ("patient_id,treated,pfs_months,pfs_event,os_months\n1,1,3,1,5", "missing column(s) os_event"),
    "non-numeric": (HEADER + "\n" + "\n".join([GOOD[0], "2,0,sixty,4.0,0,4.0,0,SD", GOOD[2]]), "row 2, column age: 'sixty' is not a number"),
    "empty cell": (HEADER + "\n" + "\n".join([GOOD[0], "2,0,60,,0,4.0,0,SD", GOOD[2]]), "row 2, column pfs_months: is empty"),
    "negative time": (HEADER + "\n" + "\n".join([GOOD[0], "2,0,60,-1,0,4.0,0,SD", GOOD[2]]), "row 2, column pfs_months: -1 is negative"),
    "event not 0/1": (HEADER + "\n" + "\n".join([GOOD[0], GOOD[1], "3,0,55,2.0,2,8.0,1,PD"]), "row 3, column pfs_event: '2' must be 0 or 1"),
    "duplicate id": (HEADER + "\n" + "\n".join([GOOD[0], GOOD[1], "2,0,55,2.0,1,8.0,1,PD"]), "id 2 is repeated (row 3)"),
    "single arm": (HEADER + "\n" + "\n".join(g.replace(",0,", ",1,", 1) for g in GOOD), "every patient is treated (1)"),
    "pfs after os": (HEADER + "\n" + "\n".join([GOOD[0], "2,0,60,9.0,0,4.0,0,SD", GOOD[2]]), "row 2: pfs_months 9 exceeds os_months 4"),
    "bad response": (HEADER + "\n" + "\n".join([GOOD[0], "2,0,60,4.0,0,4.0,0,XX", GOOD[2]]), "row 2, column best_response: 'XX'"),
    "ragged row": (HEADER + "\n" + "\n".join([GOOD[0], "2,0,60,4.0", GOOD[2]]), "row 2 has 4 values"),
    "empty file": ("", "empty file"),
    "header only": (HEADER + "\n", "no patient rows"),
    "treated text": (HEADER + "\n" + "\n".join([GOOD[0], "2,yes,60,4.0,0,4.0,0,SD", GOOD[2]]), "row 2, column treated: 'yes' is not a number"),
    # issue 8 item 10: what used to crash the analysis or pass without complaint
    "huge covariate": (HEADER + "\n" + "\n".join([GOOD[0], "2,0,1e308,4.0,0,4.0,0,SD", GOOD[2]]),
                       "row 2, column age: 1e308 is beyond ±1e12, too large to analyse"),
    "semicolons": (";".join(HEADER.split(",")) + "\n" + "\n".join(";".join(g.split(",")) for g in GOOD),
                   "bad.csv: the columns are separated by semicolons (;), not commas; save it as comma-separated CSV"),
    "tabs": ("\t".join(HEADER.split(",")) + "\n" + "\n".join("\t".join(g.split(",")) for g in GOOD),
             "the columns are separated by tabs, not commas"),
    "semicolons and decimal commas": (";".join(HEADER.split(",")) + "\n" + "\n".join(
        g.replace(",", ";").replace(".", ",") for g in GOOD),
        "separated by semicolons (;), not commas; save it as comma-separated CSV (in a spreadsheet: CSV, comma "
        "delimited); it also has decimal commas: write 5.3, not 5,3"),
    "decimal comma quoted": (HEADER + "\n" + "\n".join([GOOD[0], '2,0,"60,5",4.0,0,4.0,0,SD', GOOD[2]]),
                             "row 2, column age: '60,5' is not a number (a decimal comma? write 60.5)"),
    "decimal comma": (HEADER + "\n" + "\n".join([GOOD[0], "2,0,60,5,4.0,0,4.0,0,SD", GOOD[2]]),
                      "row 2 has 9 values but the header has 8 columns; a decimal comma splits a number in two"),
    "every time 0": (HEADER + "\n" + "\n".join(g.replace("3.0", "0").replace("5.0", "0").replace("4.0", "0")
                                               .replace("2.0", "0").replace("8.0", "0") for g in GOOD),
                     "column pfs_months: every time is 0"),
    "death with PFS censored": (HEADER + "\n" + "\n".join(["1,1,50,5.0,0,5.0,1,PR", GOOD[1], GOOD[2]]),
                                "row 1: death at 5 months (os_event 1) but PFS censored then (pfs_event 0, "
                                "pfs_months 5); PFS ends with progression or death, so it must end with an event "
                                "where OS does: set pfs_event to 1"),
    "unnamed adverse event": (HEADER + ",ae_\n" + "\n".join(g + ",1" for g in GOOD),
                              "column ae_ (column 9): an adverse-event column needs the event's name after ae_"),
    "days as months": (HEADER + "\n" + "\n".join([GOOD[0], "2,0,60,1825,0,1825,0,SD", GOOD[2]]),
                       "row 2, column pfs_months: 1825 months is over 1200 (100 years); times are in months "
                       "(days? divide by 30.4375)"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_gives_one_clear_error(tmp_path, case):
    text, fragment = BAD_FILES[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(CohortFileError) as info:
        read_cohort_csv(path)
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(CohortFileError, match="no such file"):
        read_cohort_csv(tmp_path / "absent.csv")


def test_optional_columns_absent(tmp_path):
    path = tmp_path / "min.csv"
    path.write_text("patient_id,treated,pfs_months,pfs_event,os_months,os_event\n1,1,3,1,5,1\n2,0,2,1,2,1\n")
    batch = read_cohort_csv(path)
    assert batch.covariate_names == () and batch.ae_names == ()
    assert batch.best_response.tolist() == [[-1, -1]]
    assert np.isnan(batch.entry_month).all()


def test_a_censored_pfs_before_a_death_is_accepted(tmp_path):
    """PFS censored earlier than a death (progression follow-up lost, death known) is legal."""
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "\n" + "\n".join(["1,1,50,3.0,0,5.0,1,PR", GOOD[1], GOOD[2]]))
    assert read_cohort_csv(path).pfs_event[0].tolist() == [False, False, True]


def test_kinds_as_read_and_a_binary_column_with_a_missing_value_code(tmp_path):
    path = tmp_path / "c.csv"
    hbv = [int(i % 3 == 0) if i != 5 else -1 for i in range(1, 41)]
    rows = [f"{i},{i % 2},{40 + i},{hbv[i - 1]},{i % 3},{2.0 + i},1,{9.0 + i},1" for i in range(1, 41)]
    path.write_text("patient_id,treated,age,hbv,stage,pfs_months,pfs_event,os_months,os_event\n" + "\n".join(rows))
    batch = read_cohort_csv(path)
    assert batch.covariate_kinds == ("continuous", "continuous", "continuous")
    assert describe_covariate_kinds(batch) == "covariates read as continuous: age, hbv, stage"
    assert near_binary_warnings(batch) == [
        "column hbv: read as continuous, but all its values except 1 (row 5: -1) are 0 or 1; if it is binary, "
        "fix those rows (a missing-value code?), or give its kind with --scenario"]
    kinds = read_cohort_csv(path, covariate_kinds={"stage": "categorical"})
    assert describe_covariate_kinds(kinds) == ("covariates read as categorical (levels 0, 1, …): stage; "
                                               "continuous: age, hbv")


def test_a_rare_level_is_not_taken_for_a_missing_value_code(tmp_path):
    path = tmp_path / "c.csv"
    rows = [f"{i},{i % 2},{int(i % 3 == 0) if i != 7 else 2},{2.0 + i},1,{9.0 + i},1" for i in range(1, 41)]
    path.write_text("patient_id,treated,ecog,pfs_months,pfs_event,os_months,os_event\n" + "\n".join(rows))
    batch = read_cohort_csv(path)
    assert batch.covariate_kinds == ("continuous",) and near_binary_warnings(batch) == []
