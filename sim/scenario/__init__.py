"""The study description: its frozen model (:mod:`sim.scenario.model`), reading and validating
a TOML file into it (:mod:`sim.scenario.parser`) and the analysis plans it configures
(:mod:`sim.scenario.plans`).

``from sim.scenario import Scenario, load_scenario`` is the usual entry point.
"""

from sim.scenario.model import Scenario
from sim.scenario.parser import load_scenario, parse_scenario, scenario_from_mapping

__all__ = ["Scenario", "load_scenario", "parse_scenario", "scenario_from_mapping"]
