"""The study description: its frozen model (:mod:`sim.scenario.model`), the file format as
pydantic models (:mod:`sim.scenario.schema`, published as a JSON Schema by
:mod:`sim.scenario.json_schema`), reading a TOML file (:mod:`sim.scenario.parser`) and building
the model from it (:mod:`sim.scenario.build`), and the analysis plans it configures
(:mod:`sim.scenario.plans`).

``from sim.scenario import Scenario, load_scenario`` is the usual entry point.
"""

from sim.scenario.model import Scenario
from sim.scenario.parser import load_scenario, parse_scenario, scenario_from_mapping

__all__ = ["Scenario", "load_scenario", "parse_scenario", "scenario_from_mapping"]
