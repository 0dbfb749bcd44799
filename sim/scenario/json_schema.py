"""The JSON Schema of the scenario file format, generated from the pydantic models of
:mod:`sim.scenario.schema`, and the command that writes it to ``docs/scenario.schema.json``.

``python -m sim.scenario.json_schema`` rewrites the file; ``--check`` exits with 1 when the
committed file differs from what the models give (a test runs the same comparison).

The schema is written for JSON Schema draft 7, which editors validating TOML as it is typed
(Taplo, the engine of the Even Better TOML extension, supports draft 4 features) read:
definitions live under ``definitions`` and fixed-length arrays use the array form of
``items``. TOML has no null, so optional keys are simply not required (no ``null`` branch).
What a schema cannot express (a count against its arm's size, a name that must be a covariate,
a positive-definite correlation matrix) is checked by ``psmsim validate``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from sim.scenario.schema import ScenarioFile

DRAFT_7 = "http://json-schema.org/draft-07/schema#"
#: Where the schema is published, relative to the repository root.
SCHEMA_PATH = Path("docs") / "scenario.schema.json"


class _TomlSchema(GenerateJsonSchema):
    """pydantic's generator, less the ``null`` branch of optional keys."""

    def nullable_schema(self, schema: Any) -> Any:
        return self.generate_inner(schema["schema"])


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 7) of a scenario file, as a dict."""
    schema = ScenarioFile.model_json_schema(schema_generator=_TomlSchema,
                                            ref_template="#/definitions/{model}")
    schema = _draft_7(schema)
    schema["definitions"] = schema.pop("$defs", {})
    return {"$schema": DRAFT_7, "$comment": (
        "Generated from sim/scenario/schema by `python -m sim.scenario.json_schema`; do not "
        "edit. Format: docs/scenario_format.md."), **schema}


def _draft_7(node: Any) -> Any:
    """Draft 2020-12 constructs of pydantic's output in their draft 7 form (a ``$ref`` with a
    description wrapped in ``allOf``, ``prefixItems`` as an ``items`` array); no null
    defaults."""
    if isinstance(node, list):
        return [_draft_7(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _draft_7(value) for key, value in node.items()
                 if not (key == "default" and value is None)}
    if "$ref" in converted and len(converted) > 1:        # draft 7 ignores $ref's siblings
        converted = {"allOf": [{"$ref": converted.pop("$ref")}], **converted}
    if "prefixItems" in converted:
        converted["items"] = converted.pop("prefixItems")
        converted["additionalItems"] = False
    return converted


def schema_text() -> str:
    """The schema as the committed file holds it (sorted keys, 2-space indent, final
    newline)."""
    return json.dumps(scenario_json_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim.scenario.json_schema",
        description="Write the JSON Schema of the scenario format to docs/scenario.schema.json.")
    parser.add_argument("--check", action="store_true",
                        help="only compare; exit 1 if the file is stale")
    parser.add_argument("--out", type=Path, default=SCHEMA_PATH,
                        help=f"output file (default: {SCHEMA_PATH})")
    arguments = parser.parse_args(argv)
    text = schema_text()
    if arguments.check:
        current = arguments.out.read_text(encoding="utf-8") if arguments.out.exists() else ""
        if current != text:
            print(f"{arguments.out} is stale: run python -m sim.scenario.json_schema",
                  file=sys.stderr)
            return 1
        print(f"{arguments.out} is up to date")
        return 0
    arguments.out.write_text(text, encoding="utf-8")
    print(f"wrote {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
