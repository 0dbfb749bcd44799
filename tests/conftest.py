"""Session-wide test settings: calibrations and truths are cached in one temporary folder
shared by the whole session (and by the CLI subprocesses it starts), never in the user's
~/.cache."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("psmsim-cache")
    previous = os.environ.get("PSMSIM_CACHE_DIR")
    os.environ["PSMSIM_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("PSMSIM_CACHE_DIR", None)
    else:
        os.environ["PSMSIM_CACHE_DIR"] = previous
