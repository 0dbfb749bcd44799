"""``[study]`` and ``[arms.<name>]``: the study's name and mode, and its two arms."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Mapping

from pydantic import Field, field_validator

from sim.scenario.schema.common import Facts, FileTable, IntRange, KeyRules, invalid

#: Patients per cohort at most: matching takes one step per treated patient over all controls,
#: and a cohort is held in memory for every replicate of a block.
MAX_PATIENTS = 1_000_000
PATIENTS_WHY = "larger cohorts can be neither held in memory nor matched"
STUDY_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"


class Study(FileTable):
    """``[study]``: what the study is called and how cohorts are drawn."""

    name: str = Field(json_schema_extra={"pattern": STUDY_NAME_PATTERN},
        description="a short name, e.g. 'liu2021'")
    title: str | None = Field(None, description="a title for reports (default: the name)")
    mode: Literal["table", "selection"] = Field(
        "table", description="'table': arms of fixed size drawn from published per-arm "
                             "marginals; 'selection': one population and a logistic treatment "
                             "model ([selection])")

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not re.match(STUDY_NAME_PATTERN, name):
            raise invalid(f"{name!r} is not a valid name (allowed: letters, digits, '_', '-', "
                          f"'.')")
        return name


class Arm(FileTable):
    """``[arms.<name>]``: one of the two arms."""

    label: str | None = Field(None, description="the arm's label in reports (default: the name)")
    size: Annotated[int, IntRange(1, MAX_PATIENTS, why=PATIENTS_WHY)] | None = Field(
        None, description="the number of patients, 1 to 1000000 (table mode only)")
    treated: bool = Field(description="true for the experimental arm, false for the control")

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        if facts.mode == "table":
            return KeyRules(required={"size": "the number of patients, 1 to 1000000"})
        if facts.mode == "selection":
            return KeyRules(misplaced={"size": "in selection mode arm sizes are random; give "
                                               "selection.patients"})
        return KeyRules()
