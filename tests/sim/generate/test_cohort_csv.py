"""Cohort CSV: round trip, and one clear error naming row/column for each bad file."""

import numpy as np
import pytest

from analysis.cohort import CohortBatch
from sim.generate.cohort_csv import cohort_to_csv, read_cohort_csv
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
