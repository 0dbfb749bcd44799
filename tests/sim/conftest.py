"""Shared fixtures of the scenario tests: the scenario files and the malformed-file cases
(each a mutation of a valid file plus the field the error message must name)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from sim.scenario import Scenario, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
LIU2021 = SCENARIOS / "liu2021.toml"
SELECTION_EXAMPLE = SCENARIOS / "selection_example.toml"


@pytest.fixture(scope="session")
def liu2021_path() -> Path:
    return LIU2021


@pytest.fixture(scope="session")
def selection_example_path() -> Path:
    return SELECTION_EXAMPLE


#: ``simulation.truth_patients`` of :func:`liu2021_small_truth_path`.
SMALL_TRUTH_PATIENTS = 20_000


@pytest.fixture(scope="session")
def liu2021_small_truth_path(tmp_path_factory) -> Path:
    """``scenarios/liu2021.toml`` with ``truth_patients = 20000`` instead of 10^6, saved as
    ``liu2021.toml`` in a folder of its own: for the tests that run the shipped scenario end to
    end (``psmsim run``, ``describe``, run folders, reports) and check no truth value. Its
    per-estimand truths take under a second instead of about 25 s (the session computed them
    once, for whichever such test came first); everything else is the shipped file, and its
    calibration (whose key leaves the truth size out) is the shipped scenario's, shared through
    the session cache (tests/conftest.py)."""
    text = LIU2021.read_text(encoding="utf-8")
    assert text.count("\ntruth_patients = 1000000\n") == 1, "liu2021.toml changed: update the fixture"
    path = tmp_path_factory.mktemp("liu2021-small-truth") / "liu2021.toml"
    path.write_text(text.replace("\ntruth_patients = 1000000\n", f"\ntruth_patients = {SMALL_TRUTH_PATIENTS}\n"),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def liu2021() -> Scenario:
    return load_scenario(LIU2021)


@pytest.fixture(scope="session")
def selection_example() -> Scenario:
    return load_scenario(SELECTION_EXAMPLE)


def _with_arm_sizes(scenario: Scenario, size: int) -> Scenario:
    """The table-mode scenario with every arm resized to ``size`` patients (same marginals)."""
    return dataclasses.replace(
        scenario, arms=tuple(dataclasses.replace(arm, size=size) for arm in scenario.arms))


@pytest.fixture(scope="session")
def with_arm_sizes():
    """``with_arm_sizes(scenario, size)``: the scenario with every arm resized."""
    return _with_arm_sizes


@dataclass(frozen=True)
class Mutation:
    """Replace each ``old`` (which must occur exactly once) by ``new`` in the base file, or
    append ``append``; the error must contain ``expected``."""

    id: str
    replacements: tuple[tuple[str, str], ...]
    expected: str
    base: str = "liu2021"
    append: str = ""
    #: Replace inside the file's [checks] section (its end) instead of before it: [checks]
    #: repeats many of the scenario's rows.
    in_checks: bool = False

    def apply(self) -> str:
        path = LIU2021 if self.base == "liu2021" else SELECTION_EXAMPLE
        text = path.read_text(encoding="utf-8")
        start = text.find("\n[checks]\n")
        head, tail = (text, "") if start < 0 else (text[:start], text[start:])
        part = tail if self.in_checks else head
        for old, new in self.replacements:
            assert part.count(old) == 1, f"{self.id}: {old!r} occurs {part.count(old)} times"
            part = part.replace(old, new)
        text = head + part if self.in_checks else part + tail
        return text + self.append


def _case(id: str, old: str, new: str, expected: str, **kwargs) -> Mutation:
    return Mutation(id=id, replacements=((old, new),), expected=expected, **kwargs)


MALFORMED = [
    # [study], [arms]
    _case("study-name-missing", 'name = "liu2021"\n', "", "study.name: missing"),
    _case("study-mode-typo", 'mode = "table"', 'mode = "tabel"',
          "study.mode: 'tabel' is not one of table, selection; did you mean 'table'?"),
    Mutation("three-arms", (), "arms: 3 arm(s) given",
             append='\n[arms.third]\nsize = 3\ntreated = false\n'),
    _case("two-treated-arms", "size = 65\ntreated = false", "size = 65\ntreated = true",
          "arms: 2 arms have treated = true"),
    _case("arm-size-bool", "size = 35", "size = true",
          "arms.combination.size: expected an integer, got true (boolean)"),
    _case("arm-size-float", "size = 65", "size = 65.0",
          "arms.sorafenib.size: expected an integer, got 65 (float)"),
    _case("arm-size-zero", "size = 35", "size = 0", "arms.combination.size: 0 is too small"),
    _case("arm-key-typo", "size = 35", "sise = 35",
          "arms.combination.sise: unknown key; did you mean 'size'? (allowed: label, size, "
          "treated)"),
    _case("response-arm-typo", "[response.combination]", "[response.combinaton]",
          "response.combinaton: unknown key; did you mean 'combination'?"),
    _case("treated-string", "treated = true", 'treated = "yes"',
          "arms.combination.treated: expected true or false"),
    # covariates
    _case("count-over-arm-size", "combination = { count = 33 }\nsorafenib = { count = 52 }",
          "combination = { count = 36 }\nsorafenib = { count = 52 }",
          "covariates.hbv.combination.count: count 36 exceeds arm size 35"),
    _case("count-negative", "combination = { count = 20 }", "combination = { count = -1 }",
          "covariates.cirrhosis.combination.count: count -1 is negative"),
    _case("proportion-above-one", "combination = { count = 32 }",
          "combination = { proportion = 1.2 }",
          "covariates.male.combination.proportion: 1.2 is out of range (allowed: [0, 1])"),
    _case("count-and-proportion", "combination = { count = 32 }",
          "combination = { count = 32, proportion = 0.9 }",
          "covariates.male.combination: give either 'count' or 'proportion', not both"),
    _case("marginal-key-typo", "combination = { count = 32 }", "combination = { cout = 32 }",
          "covariates.male.combination.cout: unknown key; did you mean 'count'?"),
    _case("kind-unknown", 'kind = "lognormal"\nlabel = "TBIL',
          'kind = "log-normal"\nlabel = "TBIL',
          "covariates.tbil.kind: 'log-normal' is not one of binary, categorical, normal, "
          "lognormal; did you mean 'lognormal'?"),
    _case("quartiles-inverted", "median = 20.0, q1 = 12.2", "median = 20.0, q1 = 25.0",
          "covariates.tbil.combination: quartiles must satisfy q1 < median < q3"),
    _case("sd-negative", "mean = 38.9, sd = 4.6", "mean = 38.9, sd = -4.6",
          "covariates.alb.combination.sd: -4.6 is out of range (allowed: > 0)"),
    _case("sd-nan", "mean = 38.9, sd = 4.6", "mean = 38.9, sd = nan",
          "covariates.alb.combination.sd: expected a finite number"),
    _case("arm-marginal-missing", "sorafenib = { mean = 39.1, sd = 5.4 }\n", "",
          "covariates.alb.sorafenib: missing"),
    _case("bounds-inverted", "bounds = [18.0, 90.0]", "bounds = [90.0, 18.0]",
          "covariates.age.bounds: lower 90 must be < upper 18"),
    _case("mean-outside-bounds", "bounds = [18.0, 90.0]", "bounds = [55.0, 90.0]",
          "covariates.age.combination.mean: 53 is not inside the covariate's bounds"),
    _case("truncated-normal-impossible", "mean = 6.7, sd = 3.6", "mean = 6.7, sd = 7.0",
          "covariates.tumour_size.combination: no normal truncated to [0.5, unbounded] has "
          "mean 6.7 and SD 7"),
    _case("bounds-on-binary", 'label = "Sex, male"', 'label = "Sex, male"\nbounds = [0, 1]',
          "covariates.male.bounds: not allowed here: only normal covariates take bounds"),
    _case("population-in-table-mode", "combination = { count = 32 }",
          "population = { count = 32 }",
          "covariates.male.population: not allowed here: table mode takes one marginal per arm"),
    _case("covariate-reserved-name", "[covariates.age]", "[covariates.treated]",
          "covariates.treated: 'treated' is a reserved cohort column name"),
    # correlation
    _case("correlation-above-one", '["ast", "alt", 0.7]', '["ast", "alt", 1.2]',
          "correlation.pairs[15][2]: 1.2 is out of range (allowed: (-1, 1))"),
    _case("correlation-unknown-name", '["ast", "alt", 0.7]', '["ast", "alt_x", 0.7]',
          "correlation.pairs[15][1]: 'alt_x' is not a covariate; did you mean 'alt'?"),
    _case("correlation-duplicate-pair", '["ast", "alt", 0.7],',
          '["ast", "alt", 0.7],\n["alt", "ast", 0.1],',
          "correlation.pairs[16]: the pair (alt, ast) is already given at correlation.pairs[15]"),
    Mutation("correlation-not-positive-definite", (
        ('["bclc_c", "macrovascular_invasion", 0.5]', '["bclc_c", "macrovascular_invasion", 0.9]'),
        ('["bclc_c", "extrahepatic_metastasis", 0.6]',
         '["bclc_c", "extrahepatic_metastasis", 0.9]'),
        ('["macrovascular_invasion", "extrahepatic_metastasis", 0.2]',
         '["macrovascular_invasion", "extrahepatic_metastasis", -0.9]'),
    ), "correlation: the latent correlation matrix is not positive definite"),
    # outcome
    _case("os-median-below-pfs", "control_os_median = 9.6", "control_os_median = 5.0",
          "outcome.control_os_median: 5 must exceed control_pfs_median 6.1"),
    _case("death-share-above-one", "death_before_progression = 0.15",
          "death_before_progression = 1.5",
          "outcome.death_before_progression: 1.5 is out of range"),
    _case("effect-mode-typo", 'mode = "target_medians"', 'mode = "medians"',
          "outcome.treatment.mode: 'medians' is not one of target_medians, hazard_ratio"),
    _case("hazard-ratio-with-target-medians", "os_median = 14.1",
          "os_median = 14.1\nhazard_ratio = 0.7",
          "outcome.treatment.hazard_ratio: not allowed here: only used with mode 'hazard_ratio'"),
    _case("weibull-shape-negative", "shape = 1.1", "shape = -1.1",
          "outcome.progression.shape: -1.1 is out of range (allowed: [0.05, 20]"),
    _case("shape-with-exponential", 'baseline = "weibull"', 'baseline = "exponential"',
          "outcome.progression.shape: not allowed here: only used with baseline 'weibull'"),
    _case("piecewise-breaks-decreasing", 'baseline = "weibull"\nshape = 1.1',
          'baseline = "piecewise"\nbreaks = [6.0, 3.0]\nrelative_rates = [1.0, 2.0, 3.0]',
          "outcome.progression.breaks: [6, 3] is not strictly increasing"),
    _case("piecewise-rates-length", 'baseline = "weibull"\nshape = 1.1',
          'baseline = "piecewise"\nbreaks = [3.0, 6.0]\nrelative_rates = [1.0, 2.0]',
          "outcome.progression.relative_rates: 2 rates given for 2 breaks"),
    _case("log-hr-unknown-covariate", "macrovascular_invasion = 0.4",
          "macrovascular_invasio = 0.4",
          "outcome.covariate_log_hr.macrovascular_invasio: 'macrovascular_invasio' is not a "
          "covariate; did you mean 'macrovascular_invasion'?"),
    _case("log-hr-string", "afp_400 = 0.3", 'afp_400 = "0.3"',
          "outcome.covariate_log_hr.afp_400: expected a number, got '0.3' (string)"),
    _case("assessment-interval-zero", "interval_months = 1.84", "interval_months = 0.0",
          "outcome.assessment.interval_months: 0 is out of range (allowed: > 0"),
    _case("assessment-key-typo", "interval_months = 1.84", "interval = 1.84",
          "outcome.assessment.interval: unknown key; did you mean 'interval_months'?"),
    _case("calibrated-hr-fixed", "delay_months = 0.0",
          "delay_months = 0.0\nprogression_hazard_ratio = 0.5",
          "outcome.treatment.progression_hazard_ratio: not allowed here: only used with mode "
          "'hazard_ratio'"),
    _case("death-before-hr-zero", "delay_months = 0.0",
          "delay_months = 0.0\ndeath_before_hazard_ratio = 0.0",
          "outcome.treatment.death_before_hazard_ratio: 0 is out of range"),
    # response
    _case("response-model-typo", 'model = "pfs"', 'model = "pfs_time"',
          "response.model: 'pfs_time' is not one of covariates, pfs"),
    _case("response-from-pfs-without-scans", "[outcome.assessment]\ninterval_months = 1.84\n", "",
          "response.model: 'pfs' needs a scan schedule: add [outcome.assessment]"),
    _case("response-from-pfs-without-pd", "counts = { CR = 0, PR = 6, SD = 18, PD = 11 }",
          "counts = { CR = 0, PR = 6, SD = 29, PD = 0 }",
          "response.combination.counts.PD: 0: with response model 'pfs' the PD rate must be "
          "between 0 and 1"),
    # censoring
    _case("cutoff-before-accrual-end", "cutoff_month = 27.0", "cutoff_month = 20.0",
          "censoring.cutoff_month: 20 must exceed accrual_months 24"),
    _case("accrual-negative", "accrual_months = 24.0", "accrual_months = -1.0",
          "censoring.accrual_months: -1 is out of range"),
    _case("censoring-missing", "[censoring]\naccrual_months = 24.0\ncutoff_month = 27.0\n"
          "dropout_rate = 0.0\n", "", "censoring: missing"),
    # response
    _case("response-counts-not-arm-size", "PR = 6, SD = 18", "PR = 7, SD = 18",
          "response.combination.counts: 0 + 7 + 18 + 11 = 36, not the arm size 35"),
    _case("response-probabilities-sum", "counts = { CR = 0, PR = 2, SD = 45, PD = 18 }",
          "probabilities = { CR = 0.0, PR = 0.5, SD = 0.5, PD = 0.5 }",
          "response.sorafenib.probabilities: [0, 0.5, 0.5, 0.5] sums to 1.5, not 1"),
    _case("response-category-missing", "SD = 45, PD = 18 }", "SD = 45 }",
          "response.sorafenib.counts.PD: missing"),
    # adverse events
    _case("ae-grade34-above-any", "combination = { any = 17, grade34 = 1 }",
          "combination = { any = 1, grade34 = 2 }",
          "adverse_events.thrombocytopenia.combination.grade34: 2 exceeds any = 1"),
    _case("ae-count-over-arm-size", "sorafenib = { any = 34, grade34 = 4 }",
          "sorafenib = { any = 66, grade34 = 4 }",
          "adverse_events.hand_foot_syndrome.sorafenib.any: count 66 exceeds arm size 65"),
    _case("ae-dependence-unreachable", "sorafenib = { any = 59 }", "sorafenib = { any = 64 }",
          "adverse_event_dependence.sorafenib.any: 0.9846 of patients with any AE cannot be reached: "
          "independent AE types give 0.9638"),
    _case("ae-dependence-count-above-size", "combination = { any = 33 }", "combination = { any = 36 }",
          "adverse_event_dependence.combination.any: count 36 exceeds arm size 35"),
    _case("ae-dependence-two-forms", "combination = { any = 33 }", "combination = { any = 33, correlation = 0.2 }",
          "adverse_event_dependence.combination"),
    _case("ae-dependence-correlation-one", "combination = { any = 33 }", "combination = { correlation = 1.0 }",
          "adverse_event_dependence.combination.correlation: 1 is out of range (allowed: [0, 0.99]"),
    _case("ae-dependence-arm-missing", "combination = { any = 33 }\nsorafenib = { any = 59 }",
          "combination = { any = 33 }", "adverse_event_dependence.sorafenib: missing"),
    # unmeasured, analysis, simulation, top level
    Mutation("unmeasured-prevalence-above-one", (), "unmeasured.prevalence.combination: 1.3 "
             "is out of range", append="\n[unmeasured]\nprevalence = { combination = 1.3, "
             "sorafenib = 0.5 }\nlog_hr = 0.5\n"),
    _case("ps-covariate-unknown", '"prior_tace",\n]', '"prior_tac",\n]',
          "analysis.ps_covariates[14]: 'prior_tac' is not a covariate; did you mean "
          "'prior_tace'?"),
    _case("plan-unknown", 'plan = "paper"', 'plan = "papr"',
          "analysis.plan: 'papr' is not one of paper, recommended"),
    _case("analysis-unknown-option", "caliper = 0.3\n", "calipr = 0.05\n",
          "analysis.paper.calipr: unknown key; did you mean 'caliper'? (allowed: distance, "
          "matcher, caliper,"),
    _case("analysis-bad-matcher", "caliper = 0.3\n", 'caliper = 0.05\nmatcher = "spss"\n',
          "analysis.paper.matcher: 'spss' is not one of matchit_nn, spss_fuzzy_v1, "
          "spss_fuzzy_v2"),
    _case("analysis-negative-caliper", "caliper = 0.3\n", "caliper = -0.05\n",
          "analysis.paper.caliper: -0.05 must be a positive number"),
    _case("analysis-ratio-float", "caliper = 0.3\n", "caliper = 0.05\nratio = 2.0\n",
          "analysis.paper.ratio: 2.0 must be a whole number >= 1"),
    _case("analysis-unknown-preset-table", "[analysis.paper]", "[analysis.papers]",
          "analysis.papers: unknown key; did you mean 'paper'? (allowed: plan, ps_covariates, "
          "paper, recommended, methods)"),
    Mutation("analysis-preset-not-a-table", (("[analysis.paper]\n", ""),
                                             ("caliper = 0.3\n", "paper = 0.05\n")),
             "analysis.paper: expected a table, got 0.05 (float)"),
    Mutation("analysis-old-flat-overrides", (("[analysis.paper]\n", ""),
                                             ("caliper = 0.3\n",
                                              "overrides = { caliper = 0.05 }\n")),
             "analysis.overrides: the flat overrides table is no longer read: move its options "
             "under [analysis.paper] or [analysis.recommended]"),
    _case("analysis-option-outside-preset-table", "[analysis.paper]\n", "",
          "analysis.caliper: analysis options go in a table per preset: move it under "
          "[analysis.paper] or [analysis.recommended]"),
    Mutation("method-unknown-option", (), "analysis.methods.wide.calipr: unknown key; did you "
             "mean 'caliper'? (allowed: preset, ps_covariates, distance,",
             append='\n[analysis.methods.wide]\npreset = "paper"\ncalipr = 0.1\n'),
    Mutation("method-without-preset", (), "analysis.methods.wide.preset: missing (required: the "
             "preset it starts from", append="\n[analysis.methods.wide]\ncaliper = 0.1\n"),
    Mutation("method-unknown-preset", (), "analysis.methods.wide.preset: 'papr' is not one of "
             "paper, recommended; did you mean 'paper'?",
             append='\n[analysis.methods.wide]\npreset = "papr"\n'),
    Mutation("method-bad-matcher", (), "analysis.methods.wide.matcher: 'spss' is not one of "
             "matchit_nn, spss_fuzzy_v1", append='\n[analysis.methods.wide]\npreset = "paper"\n'
             'matcher = "spss"\n'),
    Mutation("method-negative-caliper", (), "analysis.methods.wide.caliper: -0.1 must be a "
             "positive number", append='\n[analysis.methods.wide]\npreset = "paper"\n'
             'caliper = -0.1\n'),
    Mutation("method-options-do-not-fit", (), "analysis.methods.wide.stabilize: stabilisation is "
             "defined for estimator 'iptw' with estimand 'ate' only (with preset 'paper'",
             append='\n[analysis.methods.wide]\npreset = "paper"\nstabilize = true\n'),
    Mutation("method-ps-covariate-unknown", (), "analysis.methods.no_labs.ps_covariates[1]: "
             "'mael' is not a covariate; did you mean 'male'?",
             append='\n[analysis.methods.no_labs]\npreset = "recommended"\n'
             'ps_covariates = ["age", "mael"]\n'),
    Mutation("method-named-as-a-preset", (), "analysis.methods.paper: 'paper' is a preset's "
             "name: change the preset itself in [analysis.paper]",
             append='\n[analysis.methods.paper]\npreset = "paper"\n'),
    Mutation("method-bad-name", (), "analysis.methods.2x: '2x' is not a valid method name",
             append='\n[analysis.methods.2x]\npreset = "paper"\n'),
    _case("plan-names-an-undefined-method", 'plan = "paper"', 'plan = "wide"',
          "analysis.plan: 'wide' is not one of paper, recommended"),
    _case("selection-recommended-caliper-zero", "# [analysis.recommended]\n# caliper = 0.1",
          "[analysis.recommended]\ncaliper = 0", "analysis.recommended.caliper: 0 must be a "
          "positive number", base="selection"),
    _case("replicates-zero", "replicates = 2000", "replicates = 0",
          "simulation.replicates: 0 is too small (allowed: an integer 1 to 1000000)"),
    _case("seed-negative", "seed = 20210430", "seed = -5", "simulation.seed: -5 is too small"),
    _case("seed-string", "seed = 20210430", 'seed = "abc"',
          "simulation.seed: expected an integer, got 'abc' (string)"),
    _case("block-size-zero", "block_size = 100", "block_size = 0",
          "simulation.block_size: 0 is too small"),
    _case("section-typo", "[simulation]", "[simulations]",
          "simulations: unknown key; did you mean 'simulation'?"),
    Mutation("selection-in-table-mode", (), "selection: not allowed here",
             append="\n[selection]\npatients = 100\nintercept = 0.0\n"),
    _case("bad-toml", "size = 35", "size = = 35", "invalid TOML: Invalid value (at line"),
    # [checks]
    _case("checks-arm-typo", "hbv = { combination = { count = 32 }", "hbv = { combinaton = { count = 32 }",
          "checks.matched.covariates.hbv.combinaton: unknown key; did you mean 'combination'?", in_checks=True),
    _case("checks-count-over-pairs", "male = { combination = { count = 31 }", "male = { combination = { count = 35 }",
          "checks.matched.covariates.male.combination.count: count 35 exceeds arm size 34", in_checks=True),
    _case("checks-form-of-kind", "age = { combination = { mean = 53.1, sd = 10.4 }", "age = { combination = { count = 3 }",
          "checks.matched.covariates.age.combination.count: 'count' does not fit a normal covariate (allowed: "
          "{mean, sd} or {median, q1, q3})", in_checks=True),
    _case("checks-p-above-one", "age = { p = 0.917 }", "age = { p = 1.917 }",
          "checks.full.covariates.age.p: 1.917 is out of range (allowed: [0, 1])", in_checks=True),
    _case("checks-unknown-covariate", "alb = { p = 0.809 }", "albumin = { p = 0.809 }",
          "checks.full.covariates.albumin: 'albumin' is not a covariate of the scenario; did you mean 'alb'?", in_checks=True),
    _case("checks-arm-values-before-matching", "hbv = { p = 0.106 }", "hbv = { combination = { count = 33 }, p = 0.106 }",
          "checks.full.covariates.hbv.combination: not allowed here: before matching the arms' values are the "
          "scenario's calibration targets", in_checks=True),
    _case("checks-response-sum", "sorafenib = { counts = { CR = 0, PR = 0, SD = 24, PD = 10 } }",
          "sorafenib = { counts = { CR = 0, PR = 0, SD = 24, PD = 11 } }",
          "checks.matched.response.sorafenib.counts: 0 + 0 + 24 + 11 = 35, not the arm's 34 patients in this cohort", in_checks=True),
    _case("checks-pairs-missing", 'pairs = 34                        # "34 pairs were matched after PSM"\n', "",
          "checks.pairs: missing (required: the matched-pair count the after-matching counts are out of)", in_checks=True),
    _case("checks-section-typo", "[checks.matched.survival]", "[checks.matched.survivl]",
          "checks.matched.survivl: unknown key; did you mean 'survival'?", in_checks=True),
    # selection mode
    _case("selection-categorical-probabilities", "probabilities = [0.3, 0.6, 0.1]",
          "probabilities = [0.3, 0.6, 0.2]",
          "covariates.ecog.population.probabilities: [0.3, 0.6, 0.2] sums to 1.1, not 1",
          base="selection"),
    _case("selection-count-given", "population = { proportion = 0.85 }",
          "population = { count = 85 }",
          "covariates.male.population.count: not allowed here: counts need a fixed arm size",
          base="selection"),
    _case("selection-log-odds-reference-level", "ecog = [0.0, -0.4, -0.8]",
          "ecog = [0.1, -0.4, -0.8]", "selection.log_odds.ecog[0]: 0.1: the first level ('0') "
          "is the reference", base="selection"),
    _case("selection-unmeasured-log-odds-without-u", "intercept = 1.2",
          "intercept = 1.2\nunmeasured_log_odds = 0.8",
          "selection.unmeasured_log_odds: not allowed here", base="selection"),
    _case("selection-mode-changed-to-table", 'mode = "selection"', 'mode = "table"',
          "arms.experimental.size: missing", base="selection"),
    _case("selection-patients-one", "patients = 100", "patients = 1",
          "selection.patients: 1 is too small", base="selection"),
]


@pytest.fixture(params=MALFORMED, ids=[case.id for case in MALFORMED])
def malformed(request) -> Mutation:
    return request.param


@pytest.fixture(scope="session")
def malformed_cases() -> list[Mutation]:
    return MALFORMED
