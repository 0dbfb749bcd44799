"""The scenario file format as pydantic models, one module per section, and its validation.

:func:`validate_document` checks a parsed TOML document and returns a :class:`ScenarioFile`
(the file as written, typed) or raises :class:`sim.errors.ScenarioError` with every problem;
:mod:`sim.scenario.build` turns a valid file into the :class:`sim.scenario.model.Scenario` the
rest of psmsim uses (fitted marginals, the full correlation matrix, defaults filled in). The JSON
Schema of the format (``docs/scenario.schema.json``) is generated from :class:`ScenarioFile` by
:mod:`sim.scenario.json_schema`.
"""

from sim.scenario.schema.document import ScenarioFile, validate_document

__all__ = ["ScenarioFile", "validate_document"]
