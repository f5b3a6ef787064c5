"""A catalogue of bad inputs, by class: each one gets exit code 2, at most 5 short lines naming the culprit, no
traceback, and nothing written to the MLflow store (a temporary SQLite store that must not come into being, and the
project's own mlruns/ untouched). Most cases run the CLI in-process (``flows.cli.main``); a handful run the installed
``snhc`` in a subprocess to prove the real entry point behaves the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from flows.cli import main
from surrogate.paths import PROJECT_ROOT
from surrogate.yaml_safety import MAX_YAML_BYTES
from tests.conftest import free_port

GOOD_CONFIG = """\
name: test
search_space:
  sn_mass_fraction: {low: 0.1, high: 0.9}
  milling_time_h: {low: 1.0, high: 20.0}
  milling_speed_rpm: {low: 200.0, high: 500.0}
  ball_to_powder_ratio: {value: 20.0}
optimiser: {n_calls: 6, n_initial_points: 3, batch_size: 3}
physics_check: {top_k: 0}
"""
GOOD_SCENARIO = """\
name: faster-milling
description: a test scenario
mode: optimise
overrides:
  optimiser: {n_calls: 4, n_initial_points: 2}
"""
LAB_HEADER = "sn_mass_fraction,milling_time_h,milling_speed_rpm,ball_to_powder_ratio,objective_capacity_mAh_per_g"
CALIBRATION_ROW = ("  - {material: Sn@HC-2-1, quantity: reversible_capacity_mAh_per_g, value: 500, unit: mAh/g, "
                   "tag: measured, sigma_pct: 5}\n")
BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
SECRET = "hunter2-s3cret"
MAX_OUTPUT_LINES = 1  # "one line naming the field and the allowed range"
MAX_OUTPUT_CHARS = 600  # one line names the input and the allowed values: nothing near a whole echoed input


LONG_NAME = "y" * 300  # longer than a file system takes for one part of a path (255 bytes)


@dataclass
class Case:
    """One bad input: the CLI arguments (with {file}, {store}, {dir} placeholders), the file to write, and a
    fragment the one-line message must contain (the offending field, option or file)."""

    label: str
    args: list[str]
    expected: str
    content: bytes | str | None = None  # written to {file}
    filename: str = "input.yaml"
    store_option: bool = True  # add --tracking-uri sqlite:///{store}
    environment: dict[str, str] = field(default_factory=dict)
    names_file: bool = False  # the message must also name {file}


def _config(*lines: str, base: str = GOOD_CONFIG) -> str:
    return base + "".join(line + "\n" for line in lines)


def config_cases() -> list[Case]:
    """Campaign YAML given as --config: YAML hazards, emptiness, shape, numbers, ranges, types, unknown keys."""
    documents = [
        ("billion laughs", BILLION_LAUGHS, "alias"),
        ("alias", "name: x\noptimiser: &o {n_calls: 6}\ncopy: *o\n", "anchor"),
        ("anchor only", "name: &n test\n", "anchor"),
        ("merge key", "base: &b {n_calls: 6}\noptimiser:\n  <<: *b\n", "anchor"),
        ("a !!binary value", "name: !!binary aGVsbG8=\n", "YAML tag !!binary is not allowed"),
        ("a !!set value", "name: !!set {a, b}\n", "YAML tag !!set is not allowed"),
        ("duplicate top-level key", _config("name: again"), "duplicate key 'name'"),
        ("duplicate nested key", GOOD_CONFIG.replace("batch_size: 3}", "batch_size: 3, batch_size: 4}"),
         "duplicate key 'batch_size'"),
        ("duplicate deep key", _config("objective:", "  cycle: 100", "  cycle: 200"), "duplicate key 'cycle'"),
        ("empty file", "", "empty config"),
        ("comments only", "# nothing here\n# at all\n", "empty config"),
        ("empty mapping", "{}\n", "empty config"),
        ("null document", "null\n", "empty config"),
        ("list at top level", "- name\n- test\n", "expected a mapping"),
        ("number at top level", "42\n", "expected a mapping"),
        ("an integer of 5000 digits", "optimiser: {seed: " + "9" * 5000 + "}\n", "a number too long to be a value"),
        ("a lab step of a categorical field", _config("lab_steps: {milling_atmosphere: 1}"),
         "lab_steps.milling_atmosphere: not a real recipe field"),
        ("a lab step beyond a tenth of its range", _config("lab_steps: {milling_speed_rpm: 500}"),
         "lab_steps.milling_speed_rpm=500.0 is out of range: allowed above 0 to 95"),
        ("a lab step of 0", _config("lab_steps: {milling_time_h: 0}"), "lab_steps.milling_time_h=0.0 is out of range"),
        ("a tag that makes a number of words", "optimiser: {seed: !!int 'abc'}\n",
         "a value its tag cannot make (\"invalid literal for int() with base 10: 'abc'\")"),
        ("a tag that makes a number of words that say digits", "optimiser: {seed: !!int '12digits'}\n",
         "a value its tag cannot make"),
        ("a path for a name", GOOD_CONFIG.replace("name: test", "name: ../../../escaped"), "name: names files and "
         "folders"),
        ("text for a number that may also be a word", GOOD_CONFIG.replace("batch_size: 3}", "batch_size: 3, gp_noise: "
         "'1e-3'}"), "optimiser.gp_noise: expected a number or 'gaussian', got '1e-3'"),
        ("string at top level", "just some words\n", "expected a mapping"),
        ("NaN penalty", _config("objective: {expansion_penalty_mAh_per_g_per_pct: .nan}"),
         "objective.expansion_penalty_mAh_per_g_per_pct=nan is not a finite number"),
        ("NaN failure penalty", GOOD_CONFIG.replace("batch_size: 3}", "batch_size: 3, failure_penalty: .NaN}"),
         "optimiser.failure_penalty=nan"),
        ("inf current", _config("objective: {current_A_per_g: .inf}"),  # with the range, as a finite value's
         "objective.current_A_per_g=inf is not a finite number: allowed 0 (exclusive) to 1000"),
        ("NaN current of a listed objective", _config("objectives: [{kind: capacity, current_A_per_g: .nan}, "
                                                      "{kind: milling_time}]"),
         "objectives[0].current_A_per_g=nan is not a finite number: allowed 0 (exclusive) to 1000"),
        ("-inf model parameter", _config("model_parameters: {hc_capacity_mAh_per_g: -.inf}"),
         "model_parameters.hc_capacity_mAh_per_g=-inf"),
        ("a constant without a range set to 0", _config("model_parameters: {sn_density_g_per_cm3: 0.0}"),
         "a factor of 10"),
        ("a constant without a range set absurdly high", _config("model_parameters: {hc_capacity_mAh_per_g: 1.0e+9}"),
         "allowed 30 to 3000"),
        ("an assumed constant beyond its stated range", _config("model_parameters: {charge_transfer_coefficient: 2.0}"),
         "allowed 0.3 to 0.7"),
        ("a list parameter with text in it", _config("model_parameters: {sn_plateau_potentials_V: [a, b, c, d]}"),
         "sn_plateau_potentials_V"),
        ("a named choice not among its choices", _config("model_parameters: {expansion_mixing_rule: foo}"),
         "expansion_mixing_rule='foo' is not allowed: allowed mass, volume"),
        ("local step scales that are not numbers", GOOD_CONFIG.replace("batch_size: 3}", "batch_size: 3, "
         "local_candidates_scale: [true, true]}"), "local_candidates_scale: [True, True]: allowed a share above 0"),
        ("local step scales as text", GOOD_CONFIG.replace("batch_size: 3}", "batch_size: 3, "
         "local_candidates_scale: ['0.01', '0.1']}"), "or [low, high] with 0 < low <= high <= 1"),
        ("a 400-digit local step scale", GOOD_CONFIG.replace("batch_size: 3}", "batch_size: 3, "
         "local_candidates_scale: 1" + "0" * 400 + "}"), "allowed a share above 0 and at most 1"),
        ("one local step scale in a list", GOOD_CONFIG.replace("batch_size: 3}", "batch_size: 3, "
         "local_candidates_scale: [0.1]}"), "or [low, high] with 0 < low <= high <= 1"),
        ("a fractional count", _config("model_parameters: {hc_slope_segments: 2.5}"),
         "hc_slope_segments=2.5 is not allowed: a count, so a whole number from 2 to 100"),
        ("a 400-digit integer parameter", _config("model_parameters: {hc_capacity_mAh_per_g: 1" + "0" * 400 + "}"),
         "hc_capacity_mAh_per_g=1000"),
        ("a 400-digit integer in a list parameter",
         _config("model_parameters: {sn_plateau_potentials_V: [1" + "0" * 400 + ", 0.1, 0.1, 0.1]}"),
         "sn_plateau_potentials_V=1000"),
        ("overflowing float", GOOD_CONFIG.replace("low: 0.1,", "low: 1.0e+999,"),
         "search_space.sn_mass_fraction.low=inf"),
        ("NaN bound", GOOD_CONFIG.replace("high: 0.9", "high: .nan"), "search_space.sn_mass_fraction.high=nan"),
        ("a lab scatter below any coin cell's", _config("lab_uncertainty_pct: 1.0e-6"),
         "lab_uncertainty_pct: 1e-06 is out of range: allowed 0.1 to 100"),
        ("a description longer than the run page keeps", _config("description: '" + "d" * 20000 + "'"),
         "description: String should have at most 2000 characters"),
        ("huge file", "name: test\n" + "# padding\n" * (MAX_YAML_BYTES // 10 + 1), "larger than 1024 KiB"),
        ("deep nesting", "name: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper"),
        ("tab indentation", "name: test\noptimiser:\n\tn_calls: 6\n", "malformed YAML at line 3"),
        ("unclosed bracket", "search_space: {sn_mass_fraction: [low: 0.1\n", "malformed YAML at line"),
        ("python object tag", "name: !!python/object/apply:os.system ['echo hacked']\n", "malformed YAML"),
        ("fraction above 1", GOOD_CONFIG.replace("high: 0.9", "high: 1.3"), "sn_mass_fraction.high=1.3"),
        ("n_calls too large", GOOD_CONFIG.replace("n_calls: 6", "n_calls: 1000000000"), "optimiser.n_calls"),
        ("zero batch size", GOOD_CONFIG.replace("batch_size: 3", "batch_size: 0"), "optimiser.batch_size"),
        ("negative seed", GOOD_CONFIG.replace("batch_size: 3}", "batch_size: 3, seed: -1}"), "optimiser.seed"),
        ("GP fit tolerance of 0", GOOD_CONFIG.replace("batch_size: 3}", "batch_size: 3, gp_fit_tolerance: 0}"),
         "optimiser.gp_fit_tolerance"),
        ("cycle zero", _config("objective: {cycle: 0}"), "objective.cycle"),
        ("current zero, an exclusive bound", _config("objective: {current_A_per_g: 0}"), "0 (exclusive) to 1000"),
        ("a boolean for a number", _config("objective: {current_A_per_g: true}"), "expected a number, got true"),
        ("a boolean for a fixed recipe value", _config(base=GOOD_CONFIG.replace("{value: 20.0}", "{value: true}")),
         "expected a number"),
        ("a YAML 1.1 base-60 number", _config("objective: {cycle: 1:40}"), "objective.cycle"),
        ("text for a number", _config("objective: {temperature_C: '25'}"),
         "objective.temperature_C: expected a number, got '25'"),
        ("a number for true/false", _config(base=GOOD_CONFIG.replace(
            "milling_time_h: {low: 1.0, high: 20.0}", "milling_time_h: {low: 1.0, high: 20.0, log_scale: 1}")),
         "search_space.milling_time_h.log_scale: expected true or false, got 1"),
        ("a boolean weight", _config("objectives: [{kind: capacity}, {kind: milling_time}]",
                                     "recommendation: {weights: {capacity_mAh_per_g: true}}"),
         "recommendation.weights.capacity_mAh_per_g: expected a number, got true"),
        ("a YAML 1.1 yes for a number", _config(base=GOOD_CONFIG.replace("{value: 20.0}", "{value: yes}")),
         "ball_to_powder_ratio.value='yes'"),
        ("failure penalty beyond any objective", _config(base=GOOD_CONFIG.replace(
            "batch_size: 3}", "batch_size: 3, failure_penalty: -1.0e+300}")), "optimiser.failure_penalty"),
        ("temperature too hot", _config("objective: {temperature_C: 400}"), "objective.temperature_C"),
        ("string for n_calls", GOOD_CONFIG.replace("n_calls: 6", "n_calls: many"), "optimiser.n_calls"),
        ("search space is a list", "name: x\nsearch_space: [1, 2]\n", "search_space"),
        ("a categorical choice repeated", _config(base=GOOD_CONFIG.replace(
            "ball_to_powder_ratio: {value: 20.0}", "ball_to_powder_ratio: {value: 20.0}\n"
            "  milling_atmosphere: {choices: [argon, argon, air]}")), "'argon' appears more than once"),
        ("a log-scale range below any recipe", _config(base=GOOD_CONFIG.replace(
            "milling_time_h: {low: 1.0, high: 20.0}",
            "milling_time_h: {low: 1.0e-300, high: 2.0e-300, log_scale: true}")),
         "milling_time_h.low=1e-300 is out of range: allowed 0 to 100 (0, or at least 0.0001)"),
        ("a fixed milling time closer to 0 than any recipe", _config(base=GOOD_CONFIG.replace(
            "milling_time_h: {low: 1.0, high: 20.0}", "milling_time_h: {value: 1.0e-310}")),
         "milling_time_h.value=1e-310 is out of range: allowed 0 to 100 (0, or at least 0.0001)"),
        ("an objective name MLflow cannot take", _config("objectives: [{kind: capacity, name: 'cap?'}, "
                                                         "{kind: milling_time}]"), "objectives.0.name"),
        ("an objective named as another metric", _config("objectives: [{kind: capacity, name: particle_expansion_pct},"
                                                         " {kind: milling_time}]"), "already reports"),
        ("an objective the same for every recipe", _config(
            "objectives: [{kind: capacity}, {kind: milling_time}]",
            base=GOOD_CONFIG.replace("milling_time_h: {low: 1.0, high: 20.0}", "milling_time_h: {value: 10.0}")),
         "the same for every recipe"),
        ("an objective named as a recipe field", _config("objectives: [{kind: capacity, name: sn_mass_fraction},"
                                                         " {kind: milling_time}]"), "recipe field"),
        ("an experiment name beyond MLflow's 256 characters", _config("tracking: {experiment_name: " + "e" * 300 + "}"),
         "tracking.experiment_name"),
        ("a run name with no room left for its suffix", "name: " + "n" * 240 + "\n", "at most 200 characters"),
        ("an objective named as a metric's interval", _config("objectives: [{kind: capacity, name: "
                                                              "sn_size_nm_interval_90_high}, {kind: milling_time}]"),
         "already reports"),
        ("a blank experiment name", _config("tracking: {experiment_name: ' '}"), "tracking.experiment_name"),
        ("a control character in the run name", "name: \"\\x00abc\"\n", "name: use printable characters"),
        ("a right-to-left override in the description", "description: \"abc\\u202edef\"\n",
         "description: use printable characters"),
        ("objective is a number", _config("objective: 5"), "objective"),
        ("recalibrate not a bool", _config("recalibrate: maybe"), "recalibrate"),
        ("unknown top-level key", _config("colour: blue"), "colour: unknown key"),
        ("unknown nested key", GOOD_CONFIG.replace("batch_size: 3}", "batch_size: 3, speed: 9}"),
         "optimiser.speed: unknown key"),
        ("non-string key", _config("1: one"), "Keys should be strings"),
        ("unknown surrogate", GOOD_CONFIG.replace("batch_size: 3}", "batch_size: 3, surrogate: GBRT}"),
         "optimiser.surrogate"),
        ("unknown fidelity", _config("fidelity: pybamm"), "fidelity"),
        ("negative design current",
         GOOD_CONFIG.replace("physics_check: {top_k: 0}", "physics_check: {top_k: 0, design_currents_A_per_g: [-1.7]}"),
         "physics_check.design_currents_A_per_g"),
        ("physics fidelity with several objectives",
         _config("fidelity: physics", "objectives: [{kind: capacity}, {kind: milling_time}]"), "fidelity: physics"),
        ("unknown model parameter", _config("model_parameters: {tin_magic: 3}"), "tin_magic"),
        ("empty experiment name", _config("tracking: {experiment_name: ''}"), "tracking.experiment_name"),
        ("artifact location bad scheme", _config("tracking: {artifact_location: 'htp://example/artifacts'}"),
         "tracking.artifact_location"),
        ("artifact location naming an existing run's artifacts",
         _config("tracking: {artifact_location: 'runs:/0123/x'}"), "unknown scheme 'runs'"),
        ("artifact location on Databricks", _config("tracking: {artifact_location: 'dbfs:/x'}"),
         "unknown scheme 'dbfs'"),
        ("very long unknown key", _config("k" * 1000 + ": 1"), "unknown key"),
        ("key too long for YAML", _config("k" * 20000 + ": 1"), "malformed YAML"),
        ("'nan' as a string", GOOD_CONFIG.replace("batch_size: 3}", "batch_size: 3, failure_penalty: 'nan'}"),
         "optimiser.failure_penalty"),
        ("'inf' as a string", _config("objective: {temperature_C: '-inf'}"), "objective.temperature_C"),
        ("very long string for a number", GOOD_CONFIG.replace("n_calls: 6", "n_calls: " + "x" * 20000),
         "optimiser.n_calls"),
    ]
    cases = [Case(f"config: {label}", ["optimise", "--config", "{file}"], expected, text, names_file=True)
             for label, text, expected in documents]
    cases.append(Case("config: tracking uri bad scheme", ["optimise", "--config", "{file}"], "tracking.tracking_uri",
                      _config("tracking: {tracking_uri: 'ftp://example/store'}"), store_option=False, names_file=True))
    cases += [
        Case("config: not UTF-8", ["optimise", "--config", "{file}"], "not UTF-8", b"name: \xff\xfe caf\xe9\n",
             names_file=True),
        Case("config: UTF-16", ["optimise", "--config", "{file}"], "not UTF-8", "name: test\n".encode("utf-16"),
             names_file=True),
        Case("config: a folder", ["optimise", "--config", "{dir}"], "is a folder"),
        Case("config: missing", ["optimise", "--config", "{dir}/absent.yaml"], "file not found"),
    ]
    return cases


def scenario_cases() -> list[Case]:
    """What-if scenario files (and folders of them) on the default campaign."""
    documents = [
        ("empty", "", "empty scenario file"),
        ("alias", "name: &n x\nmode: optimise\n", "anchor"),
        ("duplicate key", GOOD_SCENARIO + "mode: predict\n", "duplicate key 'mode'"),
        ("NaN in overrides", GOOD_SCENARIO.replace("n_calls: 4", "n_calls: .nan"),
         "overrides.optimiser.n_calls=nan is not a finite number: allowed 2 to 2000"),
        ("NaN for the whole overrides", "name: x\nmode: optimise\noverrides: .nan\n",
         "overrides=nan is not a finite number"),  # a key with no range: the line without one, not a traceback
        ("inf in a recipe", "name: x\nmode: predict\nrecipes:\n  - {sn_mass_fraction: .inf, milling_time_h: 1, "
                            "milling_speed_rpm: 300, ball_to_powder_ratio: 20}\n", "sn_mass_fraction=inf"),
        ("unknown key", GOOD_SCENARIO + "colour: red\n", "colour: unknown key"),
        ("missing name", GOOD_SCENARIO.replace("name: faster-milling\n", ""), "name"),
        ("unknown mode", GOOD_SCENARIO.replace("mode: optimise", "mode: dream"), "mode"),
        ("predict without recipes", GOOD_SCENARIO.replace("mode: optimise", "mode: predict"), "recipes"),
        ("unknown material", "name: x\nmode: predict\nrecipes: [unobtainium]\n", "unknown material 'unobtainium'"),
        ("recipe out of range", "name: x\nmode: predict\nrecipes:\n  - {sn_mass_fraction: 3, milling_time_h: 1, "
                                "milling_speed_rpm: 300, ball_to_powder_ratio: 20}\n", "sn_mass_fraction=3"),
        ("recipe missing a field", "name: x\nmode: predict\nrecipes:\n  - {sn_mass_fraction: 0.5}\n", "recipes"),
        ("a scenario description longer than a run page keeps", "name: x\ndescription: '" + "d" * 2500
         + "'\nmode: optimise\n", "description: String should have at most 2000 characters"),
        ("a scenario named like the baseline row", "name: Baseline\nmode: predict\nrecipes: [HC]\n",
         "'baseline' is the study's own row"),
        ("the same recipe twice", "name: x\nmode: predict\nrecipes: [HC, Sn@HC-2-1, HC]\n", "'HC' is listed twice"),
        ("a material and its recipe spelled out", "name: x\nmode: predict\nrecipes: [HC, {sn_mass_fraction: 0.0, "
         "milling_time_h: 0, milling_speed_rpm: 400, ball_to_powder_ratio: 20}]\n", "is the same recipe as 'HC'"),
        ("an override a predict scenario never reads", "name: x\nmode: predict\nrecipes: [HC]\noverrides: "
         "{optimiser: {n_calls: 500}}\n", "overrides.optimiser: a predict scenario uses only"),
        ("an objective setting a predict scenario never reads", "name: x\nmode: predict\nrecipes: [HC]\n"
         "overrides: {objective: {temperature_C: 0, current_A_per_g: 4.2}}\n",
         "overrides.objective.current_A_per_g: a predict scenario's quantities keep the base campaign's definitions"),
        ("overrides out of range", GOOD_SCENARIO.replace("n_calls: 4", "n_calls: 0"), "optimiser.n_calls"),
        ("overrides unknown key", GOOD_SCENARIO.replace("optimiser:", "optimizer:"), "optimizer: unknown key"),
        ("list at top level", "- name: x\n", "expected a mapping"),
        ("malformed", "name: [x\n", "malformed YAML"),
        ("a control character in the name", "name: \"a\\x07\"\nmode: predict\nrecipes: [HC]\n",
         "name: use printable characters"),
        ("a line separator in the name", "name: \"a\\u2028b\"\nmode: predict\nrecipes: [HC]\n",
         "name: use printable characters"),
        ("a right-to-left override in the name", "name: \"a\\u202Eb\"\nmode: predict\nrecipes: [HC]\n",
         "name: use printable characters"),
        ("a path in the name", "name: ../../escaped\nmode: predict\nrecipes: [HC]\n",
         "name: names files and folders: no / or \\, and not . or .."),
        ("the baseline's name", "name: baseline\nmode: predict\nrecipes: [HC]\n", "name: 'baseline' is the study's"),
    ]
    cases = [Case(f"scenario: {label}", ["what-if", "{file}"], expected, text, names_file=True)
             for label, text, expected in documents]
    cases += [
        Case("scenario: not UTF-8", ["what-if", "{file}"], "not UTF-8", b"name: \xe9t\xe9\n", names_file=True),
        Case("scenario: missing path", ["what-if", "{dir}/absent.yaml"], "absent.yaml"),
        Case("scenario: a Dask scheduler that does not answer, with a password", ["what-if", "{file}"],
             "scenario faster-milling: runner.address", GOOD_SCENARIO + "  runner: {kind: dask, address: "
             f"'snhc:{SECRET}@127.0.0.1:{free_port()}'}}\n"),
        Case("scenario: its own tracking store", ["what-if", "{file}"], "overrides.tracking: a scenario is logged "
             "with its study", GOOD_SCENARIO + "  tracking: {tracking_uri: 'sqlite:////proc/x/m.db'}\n"),
        Case("scenario: its own experiment", ["what-if", "{file}"], "overrides.tracking",
             GOOD_SCENARIO + "  tracking: {experiment_name: gone}\n"),
        Case("scenario: --output is a file", ["what-if", "configs/whatif", "--output", "{file}"], "--output",
             "a file, not a folder"),
        Case("scenario: folder without scenarios", ["what-if", "{dir}"], "no scenario files"),
        Case("scenario: base config a folder", ["what-if", "configs/whatif", "--config", "{dir}"], "--config"),
        # the scenario gives 'objective', the base 'objectives': named as such, not "give one, not both"
        Case("scenario: a capacity objective on a multi-objective base", ["what-if",
             "configs/whatif/strict_expansion.yaml", "--config", "configs/pareto.yaml"],
             "the base campaign has several 'objectives'"),
    ]
    return cases


def lab_cases() -> list[Case]:
    """Lab result CSVs given as --observations (optimise and suggest)."""
    documents = [
        ("empty", b"", "empty file"),
        ("header only", f"{LAB_HEADER}\n".encode(), "no rows"),
        ("ragged row", f"{LAB_HEADER}\n0.5,6,450,20,300,1,2\n".encode(), "line 2"),
        ("unclosed quote", f'{LAB_HEADER}\n0.5,6,450,20,"300\n'.encode(), "not a readable CSV"),
        ("NaN capacity", f"{LAB_HEADER}\n0.5,6,450,20,NaN\n".encode(), "objective_capacity_mAh_per_g"),
        ("inf recipe", f"{LAB_HEADER}\n0.5,inf,450,20,300\n".encode(), "milling_time_h"),
        ("text for a number", f"{LAB_HEADER}\n0.5,six,450,20,300\n".encode(), "milling_time_h"),
        ("a digit separator in a recipe cell", f"{LAB_HEADER}\n0.5,1_0,450,20,300\n".encode(),
         "milling_time_h='1_0' is not a number"),
        ("semicolon-separated", f"{LAB_HEADER.replace(',', ';')}\n0.5;6;450;20;300\n".encode(),
         "columns separated by ';'; a lab file is comma-separated"),
        ("semicolon-separated with decimal commas", f"{LAB_HEADER.replace(',', ';')}\n0,5;6;450;20;300,5\n".encode(),
         "columns separated by ';'; a lab file is comma-separated with '.' as the decimal point"),
        ("full-width digits in a recipe cell", f"{LAB_HEADER}\n０.5,6,450,20,300\n".encode(),
         "sn_mass_fraction='０.5' is not a number"),
        ("unknown column", f"{LAB_HEADER},colour\n0.5,6,450,20,300,red\n".encode(), "unknown column 'colour'"),
        ("a cycle count of 5000 digits", f"{LAB_HEADER},capacity_at_cycle_{'9' * 5000}_mAh_per_g\n0.5,6,450,20,300,200\n"
         .encode(), "unknown column 'capacity_at_cycle_999"),
        ("duplicate column", f"{LAB_HEADER},milling_time_h\n0.5,6,450,20,300,6\n".encode(),
         "column 'milling_time_h' appears twice"),
        ("capacity beyond any anode", f"{LAB_HEADER}\n0.5,6,450,20,999999\n".encode(), "allowed 0 to 598.5 mAh/g"),
        ("capacity above Sn's theoretical", "sn_mass_fraction,milling_time_h,milling_speed_rpm,ball_to_powder_ratio,"
         "objective_capacity_mAh_per_g,reversible_capacity_mAh_per_g\n0.95,6,450,20,300,999\n".encode(),
         "reversible_capacity_mAh_per_g=999 is out of range: allowed 0 to 822.15 mAh/g (Sn at 847 and HC at up to 350"),
        ("efficiency above 100 %", "sn_mass_fraction,milling_time_h,milling_speed_rpm,ball_to_powder_ratio,"
         "initial_coulombic_efficiency_pct\n0.5,6,450,20,150\n".encode(), "allowed 0 to 100 %"),
        ("objective beyond any score", "sn_mass_fraction,milling_time_h,milling_speed_rpm,ball_to_powder_ratio,"
         "objective\n0.5,6,450,20,-1e300\n".encode(), "objective=-1e+300 is out of range"),
        ("a test at cycle 0", f"{LAB_HEADER},capacity_at_cycle_0_mAh_per_g\n0.5,6,450,20,300,250\n".encode(),
         "cycle 0 is out of range"),
        # the line named is the file's own line: blank lines and quoted line breaks count
        ("an objective above the capacity it is made of", (
            f"{LAB_HEADER},objective\n0.6667,10,400,20,330,600\n").encode(),
         "objective=600 is above objective_capacity_mAh_per_g=330"),
        ("a milling time closer to 0 than any recipe", f"{LAB_HEADER}\n0.6667,1e-310,400,20,330\n".encode(),
         "milling_time_h"),
        ("a bad value after blank lines", f"{LAB_HEADER}\n0.6,10,400,20,330\n\n\n0.5,6,450,20,abc\n".encode(),
         "line 5: objective_capacity_mAh_per_g"),
        ("an unclosed quote after good rows", f"{LAB_HEADER}\n0.6,10,400,20,330\n0.5,6,450,20,\"300\n".encode(),
         "line 3: not a readable CSV"),
        ("a bad value after a quoted line break", f"{LAB_HEADER},notes\n0.6,10,400,20,330,\"two\nlines\"\n"
         f"0.5,6,450,20,abc,\n".encode(), "line 4: objective_capacity_mAh_per_g"),
        ("a header with a trailing comma", f"{LAB_HEADER},\n0.5,6,450,20,300,\n".encode(),
         "column 6 of the header has no name (a trailing comma?)"),
        ("a current spelled otherwise than the model's", f"{LAB_HEADER},capacity_at_1.70_A_per_g_mAh_per_g\n"
         f"0.5,6,450,20,300,250\n".encode(), "write the current as 1.7"),
        ("a cycle with a leading zero", f"{LAB_HEADER},capacity_at_cycle_0400_mAh_per_g\n0.5,6,450,20,300,250\n"
         .encode(), "write the cycle as 400"),
        ("more rows than a lab makes", (f"{LAB_HEADER}\n" + "0.5,6,450,20,300\n" * 501).encode(),
         "501 rows: at most 500"),
        ("a test at 0 A/g", f"{LAB_HEADER},capacity_at_0_A_per_g_mAh_per_g\n0.5,6,450,20,300,250\n".encode(),
         "current 0 A/g is out of range"),
        ("out of range", f"{LAB_HEADER}\n1.5,6,450,20,300\n".encode(), "sn_mass_fraction=1.5"),
        ("not UTF-8", f"{LAB_HEADER}\n0.5,6,450,20,300 \xb5\n".encode("latin-1"), "not UTF-8"),
        ("NUL byte", f"{LAB_HEADER}\n0.5,6,4\x0050,20,300\n".encode(), "lab"),
        ("giant cell", f"{LAB_HEADER}\n0.5,6,450,20,{'9' * 300000}\n".encode(), "lab"),
        # text cells: any character but a control or format one (a NUL, an escape, a right-to-left override)
        ("NUL byte in a sample id", f"sample_id,{LAB_HEADER}\nLAB\x00-1,0.5,6,450,20,300\n".encode(),
         "line 2: sample_id: use printable characters"),
        ("an escape code in a note", f"{LAB_HEADER},notes\n0.5,6,450,20,300,\x1b[31mred\n".encode(),
         "line 2: notes: use printable characters"),
        ("YAML instead of CSV", GOOD_CONFIG.encode(), "not a readable CSV"),
    ]
    cases = [Case(f"lab: {label}", ["optimise", "--observations", "{file}"], expected, content, "lab.csv",
                  names_file=True) for label, content, expected in documents]
    cases += [
        Case("lab: a folder", ["optimise", "--observations", "{dir}"], "is a folder"),
        Case("lab: missing", ["optimise", "--observations", "{dir}/absent.csv"], "file not found"),
        Case("lab: suggest with a broken file", ["suggest", "--observations", "{file}", "--output",
                                                 "{dir}/out.csv"], "line 2", f"{LAB_HEADER}\n0.5,6\n", "lab.csv"),
        Case("lab: suggest with a folder", ["suggest", "--observations", "{dir}", "--output", "{dir}/out.csv"],
             "is a folder"),
        Case("lab: suggest --output over the lab file it reads", ["suggest", "--observations", "{file}", "--output",
                                                                  "{file}"], "is the file --observations reads",
             (PROJECT_ROOT / "configs" / "lab_results_example.csv").read_text(), "lab.csv"),
        Case("lab: suggest --output over an existing file that is not a CSV", ["suggest", "--observations",
             "configs/lab_results_example.csv", "--output", "{file}"], "exists and is not a CSV file",
             _config(), "campaign.yaml"),
        Case("lab: calibrate with a broken file", ["calibrate", "--observations", "{file}"], "line 2",
             f"{LAB_HEADER}\n0.5,6\n", "lab.csv", store_option=False),
        Case("lab: calibrate with a folder", ["calibrate", "--observations", "{dir}"], "is a folder",
             store_option=False),
        Case("lab: calibrate with pending rows only", ["calibrate", "--observations", "{file}"],
             "no row has a measured result", "sample_id,sn_mass_fraction,milling_time_h,milling_speed_rpm,"
             "ball_to_powder_ratio,objective_capacity_mAh_per_g\nA,0.6,10,400,20,\n", "lab.csv", store_option=False),
    ]
    return cases


def calibration_cases() -> list[Case]:
    """Calibration data files given as calibrate --data."""
    documents = [
        ("empty", "", "observations"),
        ("not a mapping", "- 1\n- 2\n", "observations"),
        ("no observations key", "data: []\n", "observations"),
        ("observations not a list", "observations: 5\n", "observations"),
        ("empty observations", "observations: []\n", "observations"),
        ("row not a mapping", "observations:\n  - just text\n", "observation 1"),
        ("unknown material", "observations:\n" + CALIBRATION_ROW.replace("Sn@HC-2-1", "Pb@HC"), "material 'Pb@HC'"),
        ("unknown quantity", "observations:\n" + CALIBRATION_ROW.replace("reversible_capacity", "magic"),
         "quantity 'magic_mAh_per_g'"),
        ("unknown field", "observations:\n" + CALIBRATION_ROW.replace("unit:", "colour: red, unit:"), "colour"),
        ("negative value", "observations:\n" + CALIBRATION_ROW.replace("value: 500", "value: -500"), "value=-500"),
        ("NaN value", "observations:\n" + CALIBRATION_ROW.replace("value: 500", "value: .nan"), "value=nan"),
        ("inf sigma", "observations:\n" + CALIBRATION_ROW.replace("sigma_pct: 5", "sigma_pct: .inf"), "sigma_pct=inf"),
        ("negative current", "observations:\n" + CALIBRATION_ROW.replace("unit:", "current_A_per_g: -1, unit:"),
         "current_A_per_g=-1"),
        ("material is a list", "observations:\n" + CALIBRATION_ROW.replace("Sn@HC-2-1", "[a, b]"), "material"),
        ("alias", "observations: &o []\ncopy: *o\n", "anchor"),
        ("duplicate key", "observations:\n" + CALIBRATION_ROW.replace("tag: measured", "tag: measured, tag: derived"),
         "duplicate key 'tag'"),
        ("malformed", "observations: [\n", "malformed YAML"),
        ("capacity beyond any anode", "observations:\n" + CALIBRATION_ROW.replace("value: 500", "value: 1.0e+300"),
         "allowed 1 to 1000 mAh/g"),
        ("a 400-digit integer value", "observations:\n" + CALIBRATION_ROW.replace("value: 500", "value: 1" + "0" * 400),
         "must be a positive, finite number"),
        ("capacity below any reading", "observations:\n" + CALIBRATION_ROW.replace("value: 500", "value: 1.0e-300"),
         "value=1e-300 is out of range: reversible_capacity_mAh_per_g allowed 1 to 1000 mAh/g"),
        ("wrong unit", "observations:\n" + CALIBRATION_ROW.replace("unit: mAh/g", "unit: furlongs"), "unit='furlongs'"),
        ("missing unit", "observations:\n" + CALIBRATION_ROW.replace("unit: mAh/g, ", ""), "unit="),
        ("vanishing sigma", "observations:\n" + CALIBRATION_ROW.replace("sigma_pct: 5", "sigma_pct: 1.0e-300"),
         "sigma_pct="),
        ("current beyond any test", "observations:\n" + CALIBRATION_ROW.replace(
            "unit:", "current_A_per_g: 1.0e+300, unit:"), "current_A_per_g="),
        ("unknown top-level key", "colour: red\nobservations:\n" + CALIBRATION_ROW, "colour"),
        ("the same observation twice", "observations:\n" + CALIBRATION_ROW * 2, "same condition"),
        ("nothing to fit", "observations:\n" + CALIBRATION_ROW.replace("sigma_pct: 5", "sigma_pct: 5, fit: false"),
         "nothing to calibrate"),
    ]
    cases = [Case(f"calibration: {label}", ["calibrate", "--data", "{file}"], expected, text, "data.yaml",
                  store_option=False, names_file=True) for label, text, expected in documents]
    cases += [
        Case("calibration: not UTF-8", ["calibrate", "--data", "{file}"], "not UTF-8", b"observations: \xff\n",
             "data.yaml", store_option=False, names_file=True),
        Case("calibration: a folder", ["calibrate", "--data", "{dir}"], "--data", store_option=False),
        Case("calibration: missing", ["calibrate", "--data", "{dir}/absent.yaml"], "file not found",
             store_option=False),
    ]
    return cases


def option_cases() -> list[Case]:
    """Command-line options out of range or pointing at the wrong kind of path."""
    return [
        Case("option: calibrate --observations with --validate",
             ["calibrate", "--observations", "configs/lab_results_example.csv", "--validate"], "--validate",
             store_option=False),
        Case("option: calibrate --observations with --fidelity physics",
             ["calibrate", "--observations", "configs/lab_results_example.csv", "--fidelity", "physics"],
             "--fidelity physics", store_option=False),
        Case("option: what-if --experiment blank", ["what-if", "configs/whatif", "--experiment", " "],
             "--experiment ' ': use printable characters"),
        Case("option: what-if --experiment beyond MLflow's 256 characters",
             ["what-if", "configs/whatif", "--experiment", "e" * 300], "at most 256 characters"),
        Case("option: --n-calls 0", ["optimise", "--n-calls", "0"], "n_calls"),
        Case("option: --n-calls -3", ["optimise", "--n-calls", "-3"], "n_calls"),
        Case("option: --n-calls not a number", ["optimise", "--n-calls", "abc"], "--n-calls"),
        Case("option: --batch-size -1", ["optimise", "--batch-size", "-1"], "batch_size"),
        Case("option: --batch-size 0", ["optimise", "--batch-size", "0"], "batch_size"),
        Case("option: --batch-size 1000", ["optimise", "--batch-size", "1000"], "batch_size"),
        Case("option: --seed -5", ["optimise", "--seed", "-5"], "seed"),
        Case("option: --seed 2**40", ["optimise", "--seed", str(2**40)], "seed"),
        Case("option: what-if --n-calls 0", ["what-if", "configs/whatif", "--n-calls", "0"], "n_calls"),
        Case("option: --fidelity unknown", ["optimise", "--fidelity", "pybamm"], "--fidelity"),
        Case("option: --fidelity physics with lab observations", ["optimise", "--fidelity", "physics",
             "--observations", "configs/lab_results_example.csv"], "fidelity: physics"),
        Case("option: suggest --batch 0", ["suggest", "--batch", "0", "--observations",
                                           "configs/lab_results_example.csv"], "--batch=0"),
        Case("option: suggest --output in a missing folder", ["suggest", "--observations",
             "configs/lab_results_example.csv", "--output", "{dir}/missing/out.csv"], "--output"),
        Case("option: suggest --output is a folder", ["suggest", "--observations",
             "configs/lab_results_example.csv", "--output", "{dir}"], "--output"),
        Case("option: suggest --output inside a file", ["suggest", "--observations",  # not 'folder does not exist'
             "configs/lab_results_example.csv", "--output", "{file}/out.csv"], "is a file, not a folder",
             "x", names_file=True),
        Case("option: suggest --output on a read-only file system", ["suggest", "--observations",
             "configs/lab_results_example.csv", "--output", "/proc/snhc-suggestions.csv"], "--output"),
        Case("option: suggest without what was done", ["suggest", "--batch", "2"], "--observations"),
        Case("option: predict --temperature-C 500", ["predict", "--temperature-C", "500"], "--temperature-C",
             store_option=False),
        Case("option: predict --sn-fraction nan", ["predict", "--sn-fraction", "nan"], "--sn-mass-fraction",
             store_option=False),
        Case("option: predict --cycles 0", ["predict", "--cycles", "0"], "--cycles", store_option=False),
        Case("option: predict --current 1e300", ["predict", "--current", "1e300"], "up to 1000",
             store_option=False),
        Case("option: predict --cycles 1e30", ["predict", "--cycles", "1e30"], "up to 100000", store_option=False),
        Case("option: predict --current not a number", ["predict", "--current", "fast"],
             "--current: 'fast' is not a number: must be a positive number up to 1000", store_option=False),
        Case("option: predict --temperature-C not a number", ["predict", "--temperature-C", "warm"],
             "--temperature-C: 'warm' is not a number: allowed -40 to 80", store_option=False),
        Case("option: optimise --n-calls not an integer", ["optimise", "--n-calls", "many"],
             "--n-calls: 'many' is not an integer: allowed 2 to 2000"),
        Case("option: suggest --batch not an integer", ["suggest", "--batch", "2.5", "--observations",
                                                        "configs/lab_results_example.csv"],
             "--batch: '2.5' is not an integer: allowed 1 to 64"),
        Case("option: ui --port not an integer", ["ui", "--port", "http"],
             "--port: 'http' is not an integer: allowed 1 to 65535", store_option=False),
        Case("option: --config is not a regular file", ["optimise", "--config", "/dev/null"],
             "not a regular file"),
        Case("option: --seed named as the option", ["optimise", "--seed", "-1"], "--seed: optimiser.seed"),
        Case("option: ui --port -1", ["ui", "--port", "-1"], "--port=-1 is out of range", store_option=False),
        Case("option: ui --port 70000", ["ui", "--port", "70000"], "allowed 1 to 65535", store_option=False),
        Case("option: ui --tracking-uri empty", ["ui", "--tracking-uri", ""], "--tracking-uri", store_option=False),
        Case("tracking: ui on a store that does not exist (a mistyped path)", ["ui", "--port", "59123"],
             "so it holds no runs; a campaign creates it (make run, or snhc optimise)"),
        Case("option: an Arabic-Indic digit for a budget", ["optimise", "--n-calls", "٨"],
             "--n-calls: '٨' is not an integer: allowed 2 to 2000"),
        Case("option: a digit separator in a current", ["predict", "--current", "1_7"], "'1_7' is not a number",
             store_option=False),
        Case("option: a digit separator in a recipe field", ["predict", "--milling-time-h", "1_0"],
             "--milling-time-h: '1_0' is not a number: allowed 0 to 100", store_option=False),
        Case("option: calibrate --validate --tracking-uri empty", ["calibrate", "--validate", "--tracking-uri", ""],
             "--tracking-uri '': empty", store_option=False),
        Case("option: calibrate --tracking-uri without --validate", ["calibrate", "--tracking-uri",
                                                                    "http://127.0.0.1:9"],
             "--tracking-uri: only --validate logs to MLflow", store_option=False),
        Case("option: serve against a web server that is not Prefect", ["serve"], "not a Prefect API",
             store_option=False, environment={"PREFECT_API_URL": f"http://127.0.0.1:{_not_mlflow_port()}/api"}),
        Case("option: serve with a Prefect address without a scheme", ["serve"], "PREFECT_API_URL",
             store_option=False, environment={"PREFECT_API_URL": f"snhc:{SECRET}@127.0.0.1:4200/api"}),
        Case("env: PREFECT_API_URL not a URL", ["optimise"], "PREFECT_API_URL 'notaurl': must start with http://",
             environment={"PREFECT_API_URL": "notaurl"}),
        Case("env: PREFECT_API_URL with a broken IPv6 host", ["predict"], "PREFECT_API_URL 'http://[::1': not a URL",
             store_option=False, environment={"PREFECT_API_URL": "http://[::1"}),
        Case("env: SNHC_CACHE_DIR blank", ["predict"], "SNHC_CACHE_DIR: blank", store_option=False,
             environment={"SNHC_CACHE_DIR": "   "}),
        Case("option: what-if --output empty", ["what-if", "configs/whatif", "--output", ""], "--output: empty"),
        Case("tracking: a SQLite path from ~", ["optimise", "--tracking-uri", "sqlite:///~/snhc.db"],
             "'~' is not expanded in a URI", store_option=False),
        Case("env: SNHC_ARTIFACT_LOCATION a file: URI with a host", ["optimise"], "a file: URI with a host",
             environment={"SNHC_ARTIFACT_LOCATION": "file://otherhost/x"}),
        Case("env: PREFECT_HOME a file", ["optimise"], "PREFECT_HOME=", environment={"PREFECT_HOME": "/etc/hostname"}),
        Case("env: SNHC_EXPERIMENT_NAME is MLflow's Default", ["optimise"], "MLflow's own default experiment",
             environment={"SNHC_EXPERIMENT_NAME": "Default"}),
        Case("option: what-if --experiment Default", ["what-if", "configs/whatif", "--experiment", "Default"],
             "--experiment 'Default': MLflow's own default experiment"),
        Case("option: what-if --output name too long", ["what-if", "configs/whatif", "--output", "/tmp/" + "x" * 300],
             "--output /tmp/xxx"),
        Case("env: SNHC_CACHE_DIR where no folder can be made", ["predict"], "SNHC_CACHE_DIR=/proc/snhc-cache: cannot "
             "make the folder", store_option=False, environment={"SNHC_CACHE_DIR": "/proc/snhc-cache"}),
        Case("option: SNHC_CONFIG_DIR not a folder", ["predict"], "SNHC_CONFIG_DIR", store_option=False,
             environment={"SNHC_CONFIG_DIR": "/nonexistent/snhc-configs"}),
        Case("option: SNHC_CONFIG_DIR without the model's files", ["predict"], "has no model_parameters.yaml",
             store_option=False, environment={"SNHC_CONFIG_DIR": str(PROJECT_ROOT / "tests")}),
        # a section's own check names where each key it names was set (both options had been blamed on the file)
        # named by the subcommand that refuses it, whose --help lists what it takes (it had been "snhc: error")
        Case("option: one the subcommand does not take", ["what-if", "configs/whatif", "--fidelity", "physics"],
             "snhc what-if: error: unrecognized arguments: --fidelity physics (see snhc what-if --help)",
             store_option=False),
        # argparse had read an option's value as the command ("invalid choice: '4'")
        *[Case(f"option: {' '.join(args[:-1])} before the subcommand", args,
               f"snhc: error: {args[0]}: options come after the command (snhc COMMAND {args[0]} ...)",
               store_option=False)
          for args in (["--bogus", "predict"], ["--n-calls", "4", "optimise"], ["--fidelity", "physics", "what-if"])],
        Case("option: --batch-size above --n-calls", ["optimise", "--n-calls", "8", "--batch-size", "9"],
             "--n-calls and --batch-size: optimiser: batch_size (9) must not exceed n_calls (8)"),
        Case("option: --n-calls below the config's batch size", ["optimise", "--config", "{file}", "--n-calls", "2"],
             "--n-calls and ", "optimiser: {batch_size: 4}\n", names_file=True),
        # the --n-calls note waits until the Prefect server is known to answer (it had been a second line)
        # a blank in the address (in its password, say) had reached the HTTP client: a traceback with the password
        Case("env: PREFECT_API_URL with a blank in its password", ["optimise", "--n-calls", "8"],
             "contains a blank", environment={"PREFECT_API_URL": f"http://u:{SECRET} x@127.0.0.1:9/api"}),
        Case("env: PREFECT_API_URL unreachable with a --n-calls note", ["optimise", "--n-calls", "8"],
             "PREFECT_API_URL=http://127.0.0.1:9/api: no Prefect server answers there",
             environment={"PREFECT_API_URL": "http://127.0.0.1:9/api"}),
        Case("env: PREFECT_API_URL unreachable with a what-if --n-calls note",
             ["what-if", "configs/whatif", "--n-calls", "8"],
             "PREFECT_API_URL=http://127.0.0.1:9/api: no Prefect server answers there",
             environment={"PREFECT_API_URL": "http://127.0.0.1:9/api"}),
        # a number of a list names its range too (it had ended "is out of range:" with none)
        Case("config: an item of a list of numbers out of range", ["optimise", "--config", "{file}"],
             "design_currents_A_per_g.0: -1 is out of range: allowed 0 (exclusive) to 100",
             "physics_check: {design_currents_A_per_g: [-1]}\n"),
        # a part of a path longer than the file system takes (255 bytes) had raised "File name too long"
        *[Case(f"option: {where} with a name too long", args, f"{where} /tmp/{LONG_NAME[:40]}", store_option=store,
               environment=environment)
          for where, args, store, environment in (
              ("--config", ["optimise", "--config", f"/tmp/{LONG_NAME}.yaml"], True, {}),
              ("--observations", ["predict", "--observations", f"/tmp/{LONG_NAME}.csv"], False, {}),
              ("--data", ["calibrate", "--data", f"/tmp/{LONG_NAME}.yaml"], False, {}),
              ("scenario", ["what-if", f"/tmp/{LONG_NAME}.yaml"], True, {}),
              ("--output", ["suggest", "--observations", "configs/lab_results_example.csv", "--output",
                            f"/tmp/{LONG_NAME}.csv"], True, {}),
              ("tracking_uri", ["optimise", "--tracking-uri", f"sqlite:////tmp/{LONG_NAME}.db"], False, {}),
              ("SNHC_CONFIG_DIR", ["predict"], False, {"SNHC_CONFIG_DIR": f"/tmp/{LONG_NAME}"}))],
        Case("option: SNHC_CACHE_DIR is a file", ["predict"], "SNHC_CACHE_DIR", store_option=False,
             environment={"SNHC_CACHE_DIR": str(PROJECT_ROOT / "README.md")}),
        Case("option: serve --config a folder", ["serve", "--config", "{dir}"], "--config", store_option=False,
             environment={"PREFECT_API_URL": "http://127.0.0.1:9/api"}),
        # with no Prefect server named too, the bad file is what is reported (it had been "no Prefect server")
        Case("option: serve --config a folder, no PREFECT_API_URL", ["serve", "--config", "{dir}"],
             "--config", store_option=False, environment={"PREFECT_API_URL": ""}),
        Case("option: serve --config a malformed YAML, no PREFECT_API_URL", ["serve", "--config", "{file}"],
             "malformed YAML", "search_space: {sn_mass_fraction: [low: 0.1\n", store_option=False,
             environment={"PREFECT_API_URL": ""}),
        Case("option: serve a multi-objective config whose limits no recipe meets", ["serve", "--config", "{file}"],
             "no recipe of the search space meets", _config("objectives: [{kind: capacity}, {kind: particle_expansion}]",
                                                            "recommendation: {limits: {particle_expansion_pct: 5}}"),
             store_option=False, environment={"PREFECT_API_URL": ""}),
        Case("option: serve a config whose tracking server does not answer", ["serve", "--config", "{file}"],
             "tracking_uri", _config("tracking: {tracking_uri: 'http://127.0.0.1:9'}"), store_option=False,
             environment={"PREFECT_API_URL": "http://127.0.0.1:9/api"}),
    ]


def tracking_cases() -> list[Case]:
    """Tracking stores: servers that do not answer, SQLite paths that cannot hold a store, unknown schemes."""
    closed = free_port()
    return [
        Case("tracking: http server not running", ["optimise", "--tracking-uri", f"http://127.0.0.1:{closed}"],
             f"127.0.0.1:{closed}", store_option=False),
        Case("tracking: https server not running", ["optimise", "--tracking-uri", f"https://127.0.0.1:{closed}"],
             "no server answers", store_option=False),
        Case("tracking: postgres not running", ["optimise", "--tracking-uri",
                                                f"postgresql://snhc:{SECRET}@127.0.0.1:{closed}/mlflow"],
             "no server answers", store_option=False),
        Case("tracking: http without a host", ["optimise", "--tracking-uri", "http://"], "no host",
             store_option=False),
        Case("tracking: http with a bad port", ["optimise", "--tracking-uri", "http://127.0.0.1:99999"],
             "port", store_option=False),
        Case("tracking: sqlite path is a folder", ["optimise", "--tracking-uri", "sqlite:///{dir}"], "is a folder",
             store_option=False),
        Case("tracking: sqlite under a file", ["optimise", "--tracking-uri", "sqlite:///{file}/mlflow.db"],
             "not a folder", "", "plain.txt", store_option=False),
        Case("tracking: sqlite on a read-only file system", ["optimise", "--tracking-uri",
                                                             "sqlite:////proc/snhc-store/mlflow.db"],
             "cannot create", store_option=False),
        Case("tracking: unknown scheme", ["optimise", "--tracking-uri", "ftp://example.org/store"],
             "tracking.tracking_uri", store_option=False),
        Case("tracking: two-slash sqlite", ["optimise", "--tracking-uri", "sqlite://mlflow.db"],
             "tracking.tracking_uri", store_option=False),
        Case("tracking: empty", ["optimise", "--tracking-uri", ""], "--tracking-uri", store_option=False),
        Case("tracking: suggest against a dead server", ["suggest", "--observations",
             "configs/lab_results_example.csv", "--tracking-uri", f"http://127.0.0.1:{closed}"],
             "no server answers", store_option=False),
        Case("tracking: what-if against a dead server", ["what-if", "configs/whatif", "--tracking-uri",
                                                         f"http://127.0.0.1:{closed}"], "no server answers",
             store_option=False),
        Case("tracking: environment points at a dead server", ["optimise"], "no server answers",
             store_option=False, environment={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{closed}"}),
        Case("tracking: Dask scheduler not running", ["optimise"], "runner.address",
             environment={"SNHC_DASK_ADDRESS": f"tcp://127.0.0.1:{closed}"}),
        Case("tracking: artifact location from the environment", ["optimise"], "tracking.artifact_location",
             environment={"SNHC_ARTIFACT_LOCATION": "nope://bucket/artifacts"}),
        Case("tracking: server-side artifact location with a database store", ["optimise"],
             "mlflow-artifacts: is served by an MLflow tracking server",
             environment={"SNHC_ARTIFACT_LOCATION": "mlflow-artifacts:/x"}),
        Case("tracking: SQLite path ending in a slash (a folder)", ["optimise", "--tracking-uri",
             "sqlite:///{dir}/newdir/"], "is a folder, expected a SQLite database file", store_option=False),
        Case("tracking: malformed server address", ["optimise", "--tracking-uri", "http://[::1"], "malformed",
             store_option=False),
        Case("tracking: a web server that is not MLflow", ["optimise", "--tracking-uri",
             f"http://snhc:{SECRET}@127.0.0.1:{_not_mlflow_port()}"], "not an MLflow tracking server",
             store_option=False),
        Case("tracking: a server that accepts and never answers", ["optimise", "--tracking-uri",
             f"http://127.0.0.1:{_silent_port()}"], "no answer to GET /health", store_option=False),
        Case("tracking: sqlite file that is not a database", ["optimise", "--tracking-uri", "sqlite:///{file}"],
             "not a SQLite database", "name: not a database\n", "mlflow.db", store_option=False),
        Case("tracking: a web server that answers /health alone", ["optimise", "--tracking-uri",
             f"http://127.0.0.1:{_health_only_port()}"], "not an MLflow tracking server (GET /version answered 404)",
             store_option=False),
        Case("tracking: a server whose /health and /version answer but whose API refuses the credentials",
             ["optimise", "--tracking-uri", f"http://snhc:{SECRET}@127.0.0.1:{_guarded_api_port()}"],
             "the server refuses its API (GET /api/2.0/mlflow/experiments/search answered 401)", store_option=False),
        Case("tracking: a web server that answers every path 200 with a page", ["optimise", "--tracking-uri",
             f"http://127.0.0.1:{_answering_port(b'<html>nginx</html>')}"],
             "not an MLflow tracking server (GET /version answered '<html>nginx</html>', not a version number)",
             store_option=False),
        Case("tracking: a web server that answers every path 200 with a JSON string", ["optimise", "--tracking-uri",
             f"http://127.0.0.1:{_answering_port(JSON_STRING)}"], "not an MLflow tracking server", store_option=False),
        Case("env: PREFECT_API_URL at a web server that answers every path 200", ["optimise"],
             "PREFECT_API_URL", environment={"PREFECT_API_URL": f"http://127.0.0.1:{_answering_port(JSON_STRING)}/api"}),
        Case("tracking: a port that accepts and never speaks PostgreSQL", ["optimise", "--tracking-uri",
             f"postgresql://snhc:{SECRET}@127.0.0.1:{_silent_port()}/mlflow"], "no PostgreSQL connection",
             store_option=False),
        Case("tracking: MLflow's file store", ["optimise", "--tracking-uri", "file:///{dir}/mlruns"],
             "maintenance mode", store_option=False),
        Case("tracking: sqlite in memory", ["optimise", "--tracking-uri", "sqlite:///:memory:"], "in-memory",
             store_option=False),
        Case("tracking: sqlite header then junk", ["optimise", "--tracking-uri", "sqlite:///{file}"],
             "cannot be read as a SQLite database", b"SQLite format 3\x00" + b"\xff" * 200, "junk.db",
             store_option=False),
        Case("tracking: another program's SQLite database", ["optimise", "--tracking-uri", "sqlite:///{file}"],
             "another program's database (tables inventory)", _foreign_sqlite(), "inventory.db", store_option=False),
        Case("tracking: a password without a scheme", ["optimise", "--tracking-uri",
             f"snhc:{SECRET}@127.0.0.1:{closed}"], "--tracking-uri", store_option=False),
        Case("tracking: Dask address with a password and no scheme", ["optimise"], "runner.address",
             environment={"SNHC_DASK_ADDRESS": f"snhc:{SECRET}@127.0.0.1:{closed}"}),
        Case("tracking: artifact location with credentials", ["optimise"], "credentials",
             environment={"SNHC_ARTIFACT_LOCATION": f"s3://snhc:{SECRET}@bucket/artifacts"}),
        Case("tracking: artifact location needing a package not installed", ["optimise"], "not installed",
             environment={"SNHC_ARTIFACT_LOCATION": "gs://bucket/artifacts"}),
        Case("tracking: artifact location under a file", ["optimise"], "expected a folder",
             environment={"SNHC_ARTIFACT_LOCATION": f"{PROJECT_ROOT / 'README.md'}/artifacts"}),
    ]


def _not_mlflow_port() -> int:
    """A web server that answers every request 404 (not MLflow's /health), for the life of the test session."""
    return _web_server(healthy=False)


def _health_only_port() -> int:
    """A web server that answers /health 200 and everything else 404: healthy, but not MLflow."""
    return _web_server(healthy=True)


JSON_STRING = b'"ok"'  # a JSON answer that is not an object


def _guarded_api_port() -> int:
    """A web server that answers /health and /version as MLflow does and 401 everywhere else: a proxy guarding the
    API alone, or credentials without permission (a hostile-input helper's stub)."""
    return _web_server(healthy=True, answers={"/version": b"3.17.0"}, other_status=401)


def _answering_port(body: bytes) -> int:
    """A web server that answers every path 200 with ``body`` (a proxy's page, a JSON string)."""
    return _web_server(healthy=True, body=body)


def _web_server(healthy: bool, body: bytes | None = None, answers: dict[str, bytes] | None = None,
                other_status: int = 404) -> int:
    """A local web server answering ``other_status`` to every path (but /health with 200 if ``healthy``, a path of
    ``answers`` with 200 and its answer; every path with 200 and ``body`` if given); returns its port."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the handler's API
            if body is not None:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(body)
            elif healthy and self.path.endswith("/health") or self.path in (answers or {}):
                self.send_response(200)
                self.end_headers()
                self.wfile.write((answers or {}).get(self.path, b"OK"))
            else:
                self.send_error(other_status)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def _foreign_sqlite() -> bytes:
    """The bytes of a SQLite database another program made (one table, no MLflow tables)."""
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "other.db"
        with contextlib.closing(sqlite3.connect(path)) as connection:
            connection.execute("CREATE TABLE inventory (item TEXT)")
            connection.commit()
        return path.read_bytes()


def _silent_port() -> int:
    """A port whose listener accepts connections (the kernel's backlog) and never answers."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    _KEPT_OPEN.append(listener)
    return listener.getsockname()[1]


_KEPT_OPEN: list = []  # listeners that must stay open while the cases run


def run_id_cases() -> list[Case]:
    """Run ids given to --resume."""
    unknown = "0123456789abcdef0123456789abcdef"
    return [
        Case("run id: empty", ["optimise", "--resume", ""], "--resume"),
        Case("run id: blank", ["optimise", "--resume", "   "], "--resume"),
        Case("run id: too short", ["optimise", "--resume", "abc123"], "not an MLflow run id"),
        Case("run id: 33 characters", ["optimise", "--resume", unknown + "0"], "not an MLflow run id"),
        Case("run id: upper case", ["optimise", "--resume", unknown.upper()], "not an MLflow run id"),
        Case("run id: a path", ["optimise", "--resume", "../../etc/passwd"], "not an MLflow run id"),
        Case("run id: suggest empty", ["suggest", "--resume", ""], "--resume"),
        Case("run id: suggest malformed", ["suggest", "--resume", "xyz", "--observations",
                                           "configs/lab_results_example.csv"], "not an MLflow run id"),
        Case("run id: unknown, no store yet", ["optimise", "--resume", unknown], "no such store"),
        Case("run id: unknown in an existing store", ["optimise", "--resume", unknown, "--tracking-uri",
                                                      "sqlite:///{empty_store}"], unknown, store_option=False),
    ]


CASES = (config_cases() + scenario_cases() + lab_cases() + calibration_cases() + option_cases() + tracking_cases()
         + run_id_cases())
SUBPROCESS_LABELS = {"config: billion laughs", "option: suggest --output in a missing folder",
                     "tracking: http server not running", "run id: empty", "lab: a folder"}


def _project_state() -> list[tuple[str, int, int]]:
    """Every file under the project's mlruns/ with its size and mtime: it must not change."""
    folder = PROJECT_ROOT / "mlruns"
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture(scope="module")
def project_store():
    before = _project_state()
    yield
    assert _project_state() == before, "the project's mlruns/ changed"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """An initialised MLflow SQLite store that holds no runs."""
    from flows.tracking import open_client

    path = tmp_path_factory.mktemp("empty_store") / "mlflow.db"
    open_client(f"sqlite:///{path}")
    return path


def _runs_in(database: Path) -> int:
    import sqlite3

    with sqlite3.connect(database) as connection:
        return connection.execute("select count(*) from runs").fetchone()[0]


def _arguments(case: Case, tmp_path: Path, empty_store: Path) -> tuple[list[str], Path, Path]:
    folder = tmp_path / "inputs"
    folder.mkdir()
    target = folder / case.filename
    if case.content is not None:
        content = case.content.encode("utf-8") if isinstance(case.content, str) else case.content
        target.write_bytes(content)
    store = tmp_path / "store" / "mlflow.db"
    values = {"file": str(target), "dir": str(folder), "store": str(store), "empty_store": str(empty_store)}
    args = [arg.format(**values) for arg in case.args]
    if case.store_option:
        args += ["--tracking-uri", f"sqlite:///{store}"]
    return args, target, store


def _run_in_process(args: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _run_subprocess(args: list[str], environment: dict[str, str]) -> tuple[int, str]:
    snhc = Path(sys.executable).with_name("snhc")
    result = subprocess.run([str(snhc), *args], capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT,
                            env=os.environ | environment)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("case", CASES, ids=[case.label for case in CASES])
def test_bad_input_gets_one_line_and_exit_2(case, tmp_path, capsys, monkeypatch, project_store, empty_store):
    monkeypatch.chdir(PROJECT_ROOT)
    for variable in ("MLFLOW_TRACKING_URI", "SNHC_ARTIFACT_LOCATION", "SNHC_EXPERIMENT_NAME", "SNHC_DASK_ADDRESS"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in case.environment.items():
        monkeypatch.setenv(variable, value)
    args, target, store = _arguments(case, tmp_path, empty_store)
    import flows.optimise
    import flows.whatif

    def flow_started(*args, **kwargs):
        raise AssertionError("a flow started for a bad input")

    monkeypatch.setattr(flows.optimise, "optimise_anode", flow_started)  # a missed check fails fast, runs nothing
    monkeypatch.setattr(flows.whatif, "what_if", flow_started)
    from flows import prefect_server

    start = prefect_server.start

    def server_started():  # checking the user's own server (PREFECT_API_URL) is a check; starting one is not
        if not os.environ.get("PREFECT_API_URL"):
            raise AssertionError("a temporary Prefect server started for a bad input")
        return start()

    monkeypatch.setattr(prefect_server, "start", server_started)
    if case.label in SUBPROCESS_LABELS:
        code, output = _run_subprocess(args, case.environment)
    else:
        code, output = _run_in_process(args, capsys)
    lines = output.strip().splitlines()
    assert code == 2, output
    assert 1 <= len(lines) <= MAX_OUTPUT_LINES, output
    assert len(output) <= MAX_OUTPUT_CHARS, output[:2000]
    assert "Traceback" not in output, output
    assert case.expected in output, output
    if case.names_file:
        assert str(target) in output, output
    assert SECRET not in output, output
    assert not store.parent.exists(), "a store was created for a bad input"
    assert _runs_in(empty_store) == 0


def test_catalogue_covers_every_class():
    classes = {case.label.split(":")[0] for case in CASES}
    assert classes == {"config", "scenario", "lab", "calibration", "option", "tracking", "run id", "env"}
    assert len(CASES) >= 70


# --- secrets -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, secret, kept", [
    (f"http://bob:{SECRET}@mlflow.example.org:5000", SECRET, "mlflow.example.org:5000"),
    (f"PREFECT_API_URL http://bob:{SECRET} x@h:4200/api: no server", SECRET, "h:4200/api: no server"),  # a blank
    (f"postgresql+psycopg2://snhc:{SECRET}@db:5432/mlflow", SECRET, "db:5432/mlflow"),
    (f"https://user:p@ss:{SECRET}@host/api", SECRET, "host/api"),
    (f"https://host/x?token={SECRET}&page=2", SECRET, "page=2"),
    (f"s3://bucket/key?X-Amz-Signature={SECRET}&X-Amz-Credential={SECRET}", SECRET, "s3://bucket/key"),
    (f"https://host/blob?sig={SECRET}", SECRET, "https://host/blob"),
    (f"https://host/?access_token={SECRET}#top", SECRET, "#top"),
    (f"http://127.0.0.1:4200/api#token={SECRET}", SECRET, "127.0.0.1:4200/api#token="),  # in the fragment too
    (f"http://h/?password={SECRET}", SECRET, "http://h/"),
    (f"http://h/?secret={SECRET};other=1", SECRET, "http://h/"),
    (f"http://h/?api_key={SECRET}", SECRET, "http://h/"),
    (f"failed to reach http://bob:{SECRET}@h:5000/api: refused", SECRET, "refused"),
    (f"bob:{SECRET}@127.0.0.1:8786", SECRET, "127.0.0.1:8786"),  # no scheme: a Dask address, a mistyped URI
    (f"runner.address 'bob:{SECRET}@[::1]:8786': no server answers", SECRET, "no server answers"),
    (f"http://{SECRET}@127.0.0.1:5057", SECRET, "127.0.0.1:5057"),  # a token alone as the user: a secret too
    (f"tracking_uri https://ghp_{SECRET}@mlflow.example.org/: no server", SECRET, "mlflow.example.org/: no server"),
    (f"see -https://user:{SECRET}@host/x", SECRET, "host/x"),  # a scheme is the whole run before ://
    (f"pip install git+https://ghp_{SECRET}@github.com/r", SECRET, "github.com/r"),
])
def test_redact_masks_credentials(text, secret, kept):
    from flows.inputs import REDACTED, redact

    masked = redact(text)
    assert secret not in masked and REDACTED in masked and kept in masked


@pytest.mark.parametrize("text", ["sqlite:///mlruns/mlflow.db", "postgresql://postgres@127.0.0.1:5432/mlflow",
                                  "http://127.0.0.1:5000", "https://host/path?page=2&sort=name", "plain words",
                                  "bob@example.org", "tcp://127.0.0.1:8786", "wasbs://box@acct.blob.core.windows.net"])
def test_redact_keeps_what_is_not_secret(text):
    from flows.inputs import redact

    assert redact(text) == text


def test_redacted_uri_is_revealed_only_in_memory():
    from flows.config import load_config
    from flows.inputs import redact, reveal

    uri = f"http://bob:{SECRET}@127.0.0.1:5000"
    config = load_config(overrides={"tracking": {"tracking_uri": uri}})
    assert reveal(redact(config.tracking.tracking_uri)) == uri
    assert reveal("http://***@unknown:1") == "http://***@unknown:1"


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    """One MLflow store for the tests that log (creating a store's schema costs seconds)."""
    from flows.tracking import Tracker

    folder = tmp_path_factory.mktemp("logged")
    return Tracker(f"sqlite:///{folder}/mlflow.db", "logged", str(folder / "artifacts")), folder / "artifacts"


def _artifacts_of(folder: Path, run_id: str) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and run_id in path.parts]


def test_secret_never_reaches_params_config_artifact_or_state(tracker):
    """The config dump of a campaign with a password in its URI, logged the way run_campaign logs it (flattened
    params, config.yaml, a state file, a failure reason), holds no password anywhere in the store."""
    import yaml

    from flows.campaign import Campaign
    from flows.config import load_config
    from flows.store import MlflowStateStore
    from flows.tracking import CONFIG_TAG, flatten

    tracker, artifacts = tracker
    uri = f"postgresql://snhc:{SECRET}@db.example.org:5432/mlflow?sslpassword={SECRET}"
    config = load_config(overrides={"tracking": {"tracking_uri": uri},
                                    "description": f"mirror of https://host/x?token={SECRET}"})
    run_id = tracker.start_run("campaign", {CONFIG_TAG: json.dumps(config.model_dump(mode="json"))})
    tracker.log(run_id, params=flatten(config.model_dump(mode="json")), tags={"note": uri})
    tracker.log_text(run_id, yaml.safe_dump(config.model_dump(mode="json")), "config.yaml")
    store = MlflowStateStore(tracker.client)
    store.save(run_id, -1, Campaign.new(config).to_document())
    tracker.log_files(run_id, {"table.csv": pd.DataFrame({"uri": [uri]}), "note.txt": uri})
    tracker.fail(run_id, f"ConnectionError: {uri}")

    run = tracker.client.get_run(run_id)
    assert run.data.params["tracking.tracking_uri"].startswith("postgresql://***@db.example.org")
    stored = [*run.data.params.values(), *run.data.tags.values()]
    stored += [path.read_text(encoding="utf-8") for path in _artifacts_of(artifacts, run_id)]
    assert len(stored) > 20 and not [text for text in stored if SECRET in text]
    saved = store.load(run_id, "logged")
    assert SECRET not in str(saved) and "***" in saved["config"]["tracking"]["tracking_uri"]


def test_console_lines_are_redacted(capsys):
    uri = f"http://bob:{SECRET}@127.0.0.1:{free_port()}"
    assert main(["optimise", "--tracking-uri", uri]) == 2
    output = capsys.readouterr()
    assert SECRET not in output.out + output.err and "http://***@127.0.0.1" in output.err


def test_flow_parameters_get_the_redacted_uri(monkeypatch, tmp_path):
    """The CLI hands Prefect (which records flow parameters) only the redacted URI, keeping the real one in memory."""
    import flows.cli as cli
    import flows.optimise as optimise

    seen = {}

    def fake_flow(config_path, overrides, resume, observations, campaign_token=None):
        seen["overrides"] = overrides
        raise cli.UsageError("stopped before the flow")

    listening = __import__("socket").create_server(("127.0.0.1", 0))
    try:
        uri = f"http://bob:{SECRET}@127.0.0.1:{listening.getsockname()[1]}"
        monkeypatch.setattr(optimise, "optimise_anode", fake_flow)
        from flows.campaign import Campaign
        from flows.config import load_config

        monkeypatch.setattr(cli, "_build_and_start", lambda args: (Campaign.new(load_config()), None))
        assert main(["optimise", "--tracking-uri", uri]) == 2
    finally:
        listening.close()
    assert seen["overrides"]["tracking"]["tracking_uri"] == f"http://***@127.0.0.1:{uri.rsplit(':', 1)[1]}"


# --- CSV out -----------------------------------------------------------------------------------------------------

def test_escape_csv_cells_prefixes_formulas_in_text_only():
    from flows.inputs import escape_csv_cells

    frame = pd.DataFrame({"scenario": ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "plain", None],
                          "objective": [-5.0, 1.0, 2.0, 3.0, 4.0, 5.0], "count": [-1, 2, 3, 4, 5, 6]})
    escaped = escape_csv_cells(frame)
    assert escaped["scenario"].tolist()[:5] == ["'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "plain"]
    assert pd.isna(escaped["scenario"].iloc[5])
    assert escaped["objective"].tolist() == frame["objective"].tolist()
    assert escaped["count"].tolist() == frame["count"].tolist()
    assert frame["scenario"].iloc[0].startswith("=")  # the original is untouched


def test_csv_artifacts_are_escaped(tracker):
    tracker, artifacts = tracker
    run_id = tracker.start_run("campaign")
    tracker.log_files(run_id, {"what_if_comparison.csv": pd.DataFrame({"scenario": ["=cmd|' /C calc'!A0"],
                                                                       "objective": [-3.5]})})
    written = next(p for p in _artifacts_of(artifacts, run_id) if p.name == "what_if_comparison.csv").read_text(
        encoding="utf-8")
    assert "'=cmd" in written and ",-3.5" in written


def test_an_output_folder_is_judged_by_its_own_path(tmp_path):
    """A folder to make is judged by its nearest existing ancestor, not by a sibling that happens to exist (a
    folder named 'probe' beside it had refused every new --output there)."""
    from flows.inputs import InputError, output_folder

    (tmp_path / "probe").mkdir()
    assert output_folder(tmp_path / "results" / "run1", "--output") == tmp_path / "results" / "run1"
    (tmp_path / "a_file").write_text("x")
    for path, message in ((tmp_path / "a_file", "is a file, expected a folder"),
                          (tmp_path / "a_file" / "sub", "is a file, so the folder cannot be made")):
        with pytest.raises(InputError, match=message):
            output_folder(path, "--output")


def test_a_deleted_experiment_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch):
    """MLflow adds no run to a deleted experiment: said in one line, the store left as it was."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    client.delete_experiment(client.create_experiment("gone"))
    capsys.readouterr()  # MLflow's own lines as it creates the store
    monkeypatch.setenv("SNHC_EXPERIMENT_NAME", "gone")
    assert main(["optimise", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'gone': that experiment is deleted" in err, err
    monkeypatch.delenv("SNHC_EXPERIMENT_NAME")
    assert main(["what-if", str(PROJECT_ROOT / "configs" / "whatif"), "--experiment", "gone", "--tracking-uri",
                 uri]) == 2  # a what-if study's own experiment too
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--experiment 'gone': that experiment is deleted" in err, err
    assert not client.search_runs([e.experiment_id for e in client.search_experiments(view_type=3)])


def test_serve_checks_its_scenario_files(tmp_path, capsys, monkeypatch):
    """A served what-if study must be able to run: a broken scenario is refused before serving."""
    (tmp_path / "broken.yaml").write_text("name: a\nmode: predict\nrecipes: [Unobtainium]\n")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert main(["serve", "--whatif", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown material 'Unobtainium'" in err, err


def test_an_error_naming_a_secret_is_reraised_with_it_masked():
    """What a deployment's failed flow keeps (Prefect's state message and run log) shows no credentials: an error
    whose message holds one is re-raised masked, its type named; others pass unchanged."""
    from flows.inputs import MaskedError, secrets_masked

    with pytest.raises(MaskedError) as raised:
        with secrets_masked():
            raise ConnectionError("cannot reach http://bob:hunter2@127.0.0.1:9/api")
    assert "hunter2" not in str(raised.value) and "ConnectionError: cannot reach http://***@127.0.0.1:9" in str(
        raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    with pytest.raises(KeyError):
        with secrets_masked():
            raise KeyError("no secret here")


def test_a_failed_csv_write_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """A full disk (or any failed write) while writing a CSV is the one-line input error naming the file, not a
    traceback (suggest --output on /dev/full had shown OSError's)."""
    import errno
    from pathlib import Path

    import pandas as pd

    from flows.inputs import InputError, write_csv

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(InputError, match=r"out\.csv: cannot write the CSV \(No space left on device\)"):
        write_csv(pd.DataFrame({"a": [1]}), tmp_path / "out.csv")


def test_an_unreachable_artifact_root_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    """An artifact root the campaign cannot write to gets one line and exit 2 with nothing written, whether the
    config gives it (a folder that cannot be made, an ftp server that does not answer) or an existing experiment
    holds it (MLflow writes there whatever the config says): each had started the flow, written a run, and failed
    with a traceback, and a broken experiment failed every later run and resume."""
    from mlflow.tracking import MlflowClient

    from flows.cli import main

    store = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(store)
    client.create_experiment("broken", artifact_location="/proc/snhc-broken")
    runs_before = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    capsys.readouterr()  # MLflow's own lines on making the store
    cases = [({"SNHC_EXPERIMENT_NAME": "broken"}, "experiment 'broken''s artifact location"),
             ({"SNHC_EXPERIMENT_NAME": "new", "SNHC_ARTIFACT_LOCATION": "ftp://127.0.0.1:1/artifacts"},
              "tracking.artifact_location ftp://127.0.0.1:1/artifacts: no server answers"),
             ({"SNHC_EXPERIMENT_NAME": "new", "SNHC_ARTIFACT_LOCATION": "hdfs://127.0.0.1:1/artifacts"},
              "tracking.artifact_location hdfs://127.0.0.1:1/artifacts: no server answers"),
             ({"SNHC_EXPERIMENT_NAME": "new", "SNHC_ARTIFACT_LOCATION": "/proc/snhc-artifacts"},
              "cannot write artifacts under /proc")]
    for environment, expected in cases:
        with monkeypatch.context() as patch:
            for name, value in environment.items():
                patch.setenv(name, value)
            assert main(["optimise", "--n-calls", "8", "--tracking-uri", store]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err
    assert {e.name for e in client.search_experiments()} == {"broken", "Default"}
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == runs_before


@pytest.mark.parametrize("text", ["y" * 400_000, "http://" + "a:" * 200_000, "a:b," * 100_000,
                                  "log:" + ",".join(["12:00:01"] * 44_000), "a:b," * 100_000 + "@x",
                                  "http://" + "a:" * 200_000 + "@h", ";" + "a" * 400_000])
def test_masking_a_long_text_takes_time_in_proportion_to_it(text):
    """Masking scans a text once: shapes that had made the patterns restart at every letter or comma (a 100 kB
    description took 205 s, 'a:b,' x 25 000 took 25 s) take milliseconds at 400 kB. A guard against quadratic
    patterns, with a margin of about a hundred over the measured time, not a speed target."""
    import time

    from flows.inputs import redact

    start = time.process_time()
    redact(text)
    assert time.process_time() - start < 2.0



def test_an_output_that_is_a_pipe_nobody_reads_is_refused_not_waited_on(tmp_path):
    """suggest --output at a named pipe with no reader had hung for ever (opening it waits for a reader)."""
    from flows.inputs import InputError, writable_output

    pipe = tmp_path / "out.csv"
    os.mkfifo(pipe)
    with pytest.raises(InputError, match="named pipe with no reader"):
        writable_output(pipe, "--output")


def test_a_deleted_validation_experiment_is_refused_before_the_refits(tmp_path, capsys):
    """calibrate --validate into a store whose snhc-calibration experiment is deleted had refitted for minutes,
    then failed with a traceback."""
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(store)
    client.delete_experiment(client.create_experiment("snhc-calibration"))
    capsys.readouterr()
    assert main(["calibrate", "--validate", "--tracking-uri", store]) == 2
    err = capsys.readouterr().err.strip()
    assert "that experiment is deleted" in err and len(err.splitlines()) == 1


def test_a_hostile_materials_file_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    """configs/materials.yaml is read by the strict YAML rules of every config: malformed YAML, a missing key or a
    bad recipe in it (via SNHC_CONFIG_DIR) had been tracebacks."""
    import shutil

    folder = tmp_path / "configs"
    shutil.copytree(PROJECT_ROOT / "configs", folder)
    monkeypatch.setenv("SNHC_CONFIG_DIR", str(folder))
    materials = folder / "materials.yaml"
    good = materials.read_text()
    for text, expected in [("{{{\n" + good, "malformed YAML"), ("other: 1\n", "expected 'materials:'"),
                           (good.replace("recipe: {sn_mass_fraction: 0.0,", "recipe: {sn_mass_fraction: 7.0,", 1), "out of range"),
                           ("materials: &m {}\ncopy: *m\n", "anchor")]:
        materials.write_text(text)
        assert main(["predict", "--material", "HC"]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and str(materials) in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("option", ["store", "artifact location", "what-if output", "suggest output",
                                    "scenario in a folder", "cache folder"])
def test_a_broken_link_is_refused_before_anything_runs(option, tmp_path, capsys, monkeypatch):
    """A link to nothing was walked past as 'not there yet': the SQLite store then hung for minutes in MLflow's
    retries, the artifact root and the what-if folder failed mid-run with runs written, a scenario was skipped."""
    monkeypatch.chdir(PROJECT_ROOT)
    for variable in ("MLFLOW_TRACKING_URI", "SNHC_ARTIFACT_LOCATION", "SNHC_EXPERIMENT_NAME"):
        monkeypatch.delenv(variable, raising=False)
    link = tmp_path / "link"
    store = tmp_path / "store" / "mlflow.db"
    tracking = ["--tracking-uri", f"sqlite:///{store}"]
    args = {"store": ["optimise", "--tracking-uri", f"sqlite:///{link}.db"],
            "artifact location": ["optimise", *tracking],
            "what-if output": ["what-if", "configs/whatif", "--output", str(link), *tracking],
            "suggest output": ["suggest", "--observations", "configs/lab_results_example.csv", "--output",
                               f"{link}.csv", *tracking],
            "scenario in a folder": ["what-if", str(tmp_path / "scenarios"), *tracking],
            "cache folder": ["predict", "--material", "HC"]}[option]
    target = {"store": f"{link}.db", "suggest output": f"{link}.csv",
              "scenario in a folder": tmp_path / "scenarios" / "b.yaml"}.get(option, link)
    Path(target).parent.mkdir(exist_ok=True)
    os.symlink(tmp_path / "nothing" / "here", target)
    if option == "scenario in a folder":
        (tmp_path / "scenarios" / "a.yaml").write_text("name: a\nmode: predict\nrecipes: [HC]\n")
    if option == "artifact location":
        monkeypatch.setenv("SNHC_ARTIFACT_LOCATION", str(link))
    if option == "cache folder":
        monkeypatch.setenv("SNHC_CACHE_DIR", str(link))
    code, output = _run_in_process(args, capsys)
    assert code == 2, output
    assert len(output.strip().splitlines()) == 1, output
    assert "broken link" in output and str(target) in output, output
    assert not store.parent.exists(), "a store was created for a bad input"


def test_an_output_link_to_a_file_that_is_not_a_csv_is_refused(tmp_path, capsys, monkeypatch):
    """suggest --output link.csv, where link.csv points at a config, had replaced the config with the table."""
    monkeypatch.chdir(PROJECT_ROOT)
    victim = tmp_path / "campaign.yaml"
    victim.write_text("name: mine\n")
    os.symlink(victim, tmp_path / "link.csv")
    store = tmp_path / "store" / "mlflow.db"
    code, output = _run_in_process(["suggest", "--observations", "configs/lab_results_example.csv", "--output",
                                    str(tmp_path / "link.csv"), "--tracking-uri", f"sqlite:///{store}"], capsys)
    assert code == 2 and "exists and is not a CSV file" in output, output
    assert victim.read_text() == "name: mine\n"


def test_serve_checks_its_schedules_file_before_asking_for_a_server(tmp_path):
    """configs/schedules.yaml is a file: a bad one is named before the missing server (a time zone on Mars had
    been reported as 'no Prefect server'). In a fresh process: the schedules are read once, as flows.deployments
    loads."""
    import shutil
    import subprocess
    import sys

    configs = tmp_path / "configs"
    shutil.copytree(PROJECT_ROOT / "configs", configs)
    (configs / "schedules.yaml").write_text('timezone: Mars/Olympus\nnightly_optimisation: "0 2 * * *"\n'
                                            'weekly_what_if: "0 3 * * 1"\n')
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"SNHC_CONFIG_DIR": str(configs)}
    result = subprocess.run([sys.executable, "-c", "from flows.cli import main; raise SystemExit(main(['serve']))"],
                            capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)
    assert result.returncode == 2, result.stderr
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "timezone 'Mars/Olympus' is not an IANA time zone" in err, err


@pytest.mark.parametrize("document", [
    "objective: {current_A_per_g: 1000}\n",
    "objectives: [{kind: capacity, current_A_per_g: 400}, {kind: milling_time}]\nphysics_check: {top_k: 0}\n",
])
def test_a_capacity_objective_no_recipe_can_score_is_refused_before_the_campaign(tmp_path, capsys, document):
    """At a target current where the model keeps no capacity, every recipe had scored 0 (a flat search recommended
    without a word). Refused before anything starts, naming the objective's key."""
    config = tmp_path / "c.yaml"
    config.write_text(document)
    store = tmp_path / "store"
    assert main(["optimise", "--config", str(config), "--tracking-uri", f"sqlite:///{store}/m.db", "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert "no recipe of the search space keeps a capacity at" in err and "current_A_per_g" in err
    assert "the study measured up to 4.2 A/g and 12000 cycles" in err  # read from the calibration data
    assert not store.exists()


def test_a_campaign_whose_every_evaluation_failed_ends_in_one_line(prefect_local, tmp_path, capsys, monkeypatch):
    """Nothing to recommend: the run is recorded FAILED with the reason, and the command's last word is one line
    and exit 1, not Python's traceback."""
    import flows.optimise
    from flows.evaluation import Evaluation
    from surrogate.status import Status

    monkeypatch.setattr(flows.optimise, "evaluate_batch", lambda recipes, *_: [
        Evaluation(r, Status.FAILED, float("nan"), reason="solver diverged") for r in recipes])
    uri = f"sqlite:///{tmp_path}/m.db"
    assert main(["optimise", "--n-calls", "4", "--tracking-uri", uri, "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert re.fullmatch(r"snhc optimise: error: all \d+ evaluations failed; first reason: solver diverged",
                        err.strip().splitlines()[-1]), err[-2000:]


def test_a_budget_that_leaves_fewer_start_points_than_the_config_says_so(tmp_path, capsys, monkeypatch):
    """--n-calls 5 keeps at most half its budget for space-filling points: the config's 10 had become 2 without a
    word (the run's params said 2). Said once, on stderr, once the campaign is known good (a refused command keeps
    its one line)."""
    import flows.cli

    class Started(Exception):
        pass

    def stop(*_, **__):
        raise Started

    class Server:  # a server that answers (an unreachable one is refused before any note)
        process = None

        def stop(self):
            pass

        release = stop

    monkeypatch.setattr(flows.cli, "_note_rows_outside", lambda campaign: None)
    monkeypatch.setattr("flows.prefect_server.start", Server)
    monkeypatch.setattr(flows.cli, "wait_for_prefect", stop)  # the campaign was built: nothing need run
    with pytest.raises(Started):
        main(["optimise", "--n-calls", "5", "--tracking-uri", f"sqlite:///{tmp_path}/s/m.db"])
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert notes == ["note: --n-calls 5: 2 space-filling start point(s), at most half the budget (the config's "
                     "optimiser.n_initial_points is 10)"]
    scenarios = Path(__file__).resolve().parents[2] / "configs" / "whatif"  # a what-if study's campaigns too
    with pytest.raises(Started):
        main(["what-if", str(scenarios), "--n-calls", "5", "--tracking-uri", f"sqlite:///{tmp_path}/s/m.db"])
    assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")] == notes
    config = tmp_path / "c.yaml"
    config.write_text("objective: {current_A_per_g: 1000}\n")
    assert main(["optimise", "--config", str(config), "--n-calls", "5", "--tracking-uri",
                 f"sqlite:///{tmp_path}/s/m.db"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_an_artifact_location_an_existing_experiment_does_not_use_is_refused(tmp_path, capsys, monkeypatch):
    """MLflow keeps an experiment's artifact root from its creation: a configured other one had been logged as the
    run's param while the artifacts went to the old root. Refused, naming both; the same root written as a path or
    a file URI is the same root."""
    from mlflow.tracking import MlflowClient

    from flows.inputs import _same_location

    store = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(store).create_experiment("kept", artifact_location=str(tmp_path / "a1"))
    capsys.readouterr()
    monkeypatch.setenv("SNHC_EXPERIMENT_NAME", "kept")
    monkeypatch.setenv("SNHC_ARTIFACT_LOCATION", str(tmp_path / "a2"))
    assert main(["optimise", "--n-calls", "8", "--tracking-uri", store]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "experiment 'kept' keeps its artifacts at" in err and "a2" in err, err
    assert _same_location(str(tmp_path / "a1")) == _same_location((tmp_path / "a1").as_uri())
    assert not MlflowClient(store).search_runs([MlflowClient(store).get_experiment_by_name("kept").experiment_id])


def _recording_server(host: str, answers: dict[str, tuple[int, dict[str, str], bytes]]) -> tuple[int, list]:
    """A web server on ``host`` answering each path prefix of ``answers`` (status, headers, body), 404 otherwise;
    returns its port and the list it appends each request's (path, Authorization header) to."""
    import http.server
    import threading

    seen: list = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the handler's API
            seen.append((self.path, self.headers.get("Authorization")))
            status, headers, body = next((a for p, a in answers.items() if self.path.startswith(p)), (404, {}, b""))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1], seen


def test_the_tracking_probe_sends_the_clients_credentials_and_never_to_another_host(monkeypatch):
    """The MLflow API probe sends what MLflow's client would: the token unless both a user name and a password are
    set; a redirect to another host gets no credentials (urllib had forwarded a token to whatever host a 302 named:
    a review of the probe); an auth plugin's credentials, which the probe cannot send, make a 401 no refusal."""
    from flows.inputs import InputError, check_tracking_store

    mlflow_like = {"/health": (200, {}, b"OK"), "/version": (200, {}, b"3.17.0")}
    other_port, elsewhere = _recording_server("127.0.0.2", {"/api": (200, {}, b"{}")})
    port, here = _recording_server("127.0.0.1", mlflow_like | {"/api": (
        302, {"Location": f"http://127.0.0.2:{other_port}/api/2.0/mlflow/experiments/search"}, b"")})
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "sekrit-token")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ann")  # no password: MLflow's client sends the token
    check_tracking_store(f"http://127.0.0.1:{port}")
    assert {auth for _, auth in here} == {"Bearer sekrit-token"}
    assert elsewhere and all(auth is None for _, auth in elsewhere)
    guarded, _ = _recording_server("127.0.0.1", mlflow_like | {"/api": (401, {}, b"")})
    with pytest.raises(InputError, match="the server refuses its API"):
        check_tracking_store(f"http://127.0.0.1:{guarded}")
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "some_plugin")
    check_tracking_store(f"http://127.0.0.1:{guarded}")


@pytest.mark.parametrize("token", ["s3cr3t-TOKEN-0123\r", "s3cr3t-TOKEN-0123\n", "s3cr3t TOKEN-0123", "s3cr3t-TÖKEN"])
def test_a_token_no_header_can_hold_is_one_line_that_never_shows_it(token, monkeypatch, tmp_path, capsys):
    """A token read from a file saved on Windows (a trailing CR) had been quoted whole, as the HTTP library's
    "Invalid header value b'Bearer ...'", in a line blaming the server: refused as the token's fault, unshown."""
    port, seen = _recording_server("127.0.0.1", {"/": (200, {}, b"3.17.0")})
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    assert main(["optimise", "--n-calls", "4", "--tracking-uri", f"http://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ": MLFLOW_TRACKING_TOKEN: " in err and "s3cr3t" not in err, err
    assert all(auth is None for _, auth in seen)  # nothing sent with it


def test_an_error_that_quotes_a_secret_from_the_environment_is_masked_and_data_are_not(monkeypatch):
    """An error message quoting a secret's value is masked; a path or URI is not, where a password may be a word."""
    from flows.cli import one_line
    from flows.inputs import REDACTED, redact, redact_message

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", " tok-123 \r")
    assert redact_message("failed (Invalid header b'Bearer tok-123', auth mlflow)") == (
        f"failed (Invalid header b'Bearer {REDACTED}', auth {REDACTED})")
    assert one_line(ValueError("no answer (Bearer tok-123)")) == f"no answer (Bearer {REDACTED})"
    assert redact("sqlite:////srv/mlflow/mlflow.db") == "sqlite:////srv/mlflow/mlflow.db"


@pytest.mark.parametrize("where, text", [("--tracking-uri", "sqlite:///{tmp}/ml\x1b[31mflow.db"),
                                         ("--tracking-uri", "sqlite:///{tmp}/mlflow.db "),
                                         ("--config", "{tmp}/c\x1b]0;x\x07.yaml"),
                                         ("MLFLOW_TRACKING_URI", "sqlite:///{tmp}/mlflow.db\n"),
                                         ("SNHC_CACHE_DIR", "{tmp}/cache\u202e")])
def test_a_path_or_address_with_a_control_character_or_end_blank_is_one_line_that_does_not_echo_it(
        where, text, tmp_path, monkeypatch, capsys):
    """A tracking URI with an escape sequence, a line end or a trailing blank had been taken as given: a database
    file named so, the sequence echoed to the terminal. Refused, by option or variable, before anything is made."""
    text = text.format(tmp=tmp_path)
    argv = ["optimise", "--n-calls", "4"]
    if where.startswith("--"):
        argv += [where, text]
    else:
        monkeypatch.setenv(where, text)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f": {where}: use printable characters" in err, err
    assert not any(c in err for c in "\x1b\x07\u202e") and list(tmp_path.iterdir()) == []


def test_a_path_with_a_persian_zero_width_non_joiner_is_text_not_a_control_character(tmp_path, capsys):
    folder = tmp_path / "پروژه\u200cها"
    folder.mkdir()
    assert main(["predict", "--config", str(folder / "c.yaml")]) == 2  # no such file: said as such
    err = capsys.readouterr().err
    assert "printable" not in err and "\u200c" in err


def test_an_error_line_shows_a_control_character_it_quotes_escaped():
    from flows.cli import one_line

    assert one_line(ValueError("no file a\x1b[31mb.yaml")) == "no file a\\x1b[31mb.yaml"


@pytest.mark.parametrize("name, value, said", [
    ("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "abc", "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE='abc': MLflow reads it as int"),
    ("MLFLOW_HTTP_REQUEST_TIMEOUT", "3 s", "MLFLOW_HTTP_REQUEST_TIMEOUT='3 s': MLflow reads it as int"),
    # words MLflow reads only when it uses them: at its import (a traceback), at the flow's first store call
    ("MLFLOW_LOGGING_LEVEL", "BOGUS", "MLFLOW_LOGGING_LEVEL='BOGUS': allowed CRITICAL, FATAL, ERROR, WARN, WARNING"),
    ("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "nullpool", "MLFLOW_SQLALCHEMYSTORE_POOLCLASS='nullpool': allowed "
                                                     "AssertionPool, AsyncAdaptedQueuePool, NullPool"),
    ("PREFECT_LOGGING_LEVEL", "LOUD", "PREFECT_LOGGING_LEVEL='LOUD': Prefect cannot use it (Input should be 'DEBUG'"),
    ("PREFECT_API_REQUEST_TIMEOUT", "abc", "PREFECT_API_REQUEST_TIMEOUT='abc': Prefect cannot use it"),
    # parsed by Prefect, then failed inside its HTTP client after the flow started (a 102-line traceback)
    ("PREFECT_API_REQUEST_TIMEOUT", "-1", "PREFECT_API_REQUEST_TIMEOUT='-1': a timeout, allowed 0 or more"),
    ("PREFECT_API_REQUEST_TIMEOUT", "nan", "PREFECT_API_REQUEST_TIMEOUT='nan': a timeout, allowed 0 or more")])
def test_a_library_setting_the_library_cannot_read_is_one_line_before_anything_starts(name, value, said, tmp_path,
                                                                                      monkeypatch, capsys):
    """MLflow's and Prefect's own settings in the environment: a value they cannot read had failed after the flow
    started (a 160-line traceback, or pydantic's report and 'the temporary server exited'). A valid one passes."""
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv(name, value)
    assert main(["optimise", "--n-calls", "4", "--tracking-uri", f"sqlite:///{store}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err, err
    assert not store.exists()


def test_valid_library_settings_in_the_environment_pass_the_check(monkeypatch):
    from flows.inputs import check_tool_environment

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    monkeypatch.setenv("MLFLOW_SQLALCHEMYSTORE_POOL_RECYCLE", "-1")  # SQLAlchemy's "never recycle"
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "warn")  # MLflow upper-cases it, and takes Python's aliases
    monkeypatch.setenv("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    check_tool_environment("optimise")


@pytest.mark.parametrize("revision", ["451aebb31d03", "ffffffffffff"])
def test_a_store_of_another_mlflow_version_is_refused_before_anything_starts(revision, empty_store, tmp_path, capsys):
    """A SQLite store whose schema is another MLflow version's (older, or newer than this one) had failed at the
    first run, after Prefect started, with a 128-line traceback; it is refused in one line naming the upgrade."""
    import shutil
    import sqlite3

    store = tmp_path / "old.db"
    shutil.copy(empty_store, store)
    with sqlite3.connect(store) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    for args in (["optimise", "--n-calls", "4"], ["ui"]):
        assert main([*args, "--tracking-uri", f"sqlite:///{store}"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"another MLflow version (schema {revision}" in err, err
        assert "mlflow db upgrade" in err
    assert _runs_in(store) == 0 and not store.with_name("old.db.lock").exists()


def test_a_dask_address_that_accepts_and_never_answers_is_refused_in_seconds(tmp_path, capsys):
    """A port that accepts a connection and never speaks Dask had hung a campaign for good, deaf to Ctrl-C, its
    run left RUNNING: the scheduler's handshake is bounded, and the campaign refused before anything starts."""
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted = []
    threading.Thread(target=lambda: accepted.extend(server.accept() for _ in range(4)), daemon=True).start()
    config = tmp_path / "dask.yaml"
    config.write_text(f"runner: {{kind: dask, address: 'tcp://127.0.0.1:{server.getsockname()[1]}', "
                      f"chunks_per_batch: 2}}\noptimiser: {{n_calls: 12}}\n")
    store = tmp_path / "store" / "m.db"
    started = time.monotonic()
    assert main(["optimise", "--config", str(config), "--tracking-uri", f"sqlite:///{store}"]) == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "runner.address" in err and "no Dask scheduler answers" in err, err
    assert not store.exists()
    server.close()


def test_a_bad_physics_parameter_is_found_before_the_campaign_starts(tmp_path, capsys, monkeypatch):
    """SNHC_CONFIG_DIR's physics_parameters.yaml is read by the PyBaMM check, at the end of a campaign: a bad value
    there had been found after the search had written 11 runs; it is refused up front, for a campaign that runs
    PyBaMM, and a campaign that does not is left alone."""
    import shutil

    import yaml

    from surrogate.paths import config_dir

    folder = tmp_path / "configs"
    shutil.copytree(config_dir(), folder)
    physics = yaml.safe_load((folder / "physics_parameters.yaml").read_text())
    physics["solver_threads"]["value"] = -3
    (folder / "physics_parameters.yaml").write_text(yaml.safe_dump(physics))
    monkeypatch.setenv("SNHC_CONFIG_DIR", str(folder))
    store = tmp_path / "store" / "m.db"
    assert main(["optimise", "--n-calls", "12", "--tracking-uri", f"sqlite:///{store}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "physics_parameters.yaml: parameter 'solver_threads'" in err, err
    assert not store.exists()
    from flows.cli import _check_physics_parameters
    from flows.config import load_config

    _check_physics_parameters(load_config(None, {"physics_check": {"top_k": 0}}))  # no PyBaMM: nothing read
    # a prediction at physics fidelity reads it too; one at the numpy model's does not need it
    assert main(["predict", "--material", "HC", "--fidelity", "physics"]) == 2
    assert "physics_parameters.yaml: parameter 'solver_threads'" in capsys.readouterr().err
    assert main(["predict", "--material", "HC", "--json"]) == 0


def test_a_prefect_profiles_api_url_is_used_and_checked(tmp_path, monkeypatch):
    """Prefect's profiles apply (README): a PREFECT_API_URL set with `prefect config set` in the active profile is
    the server a command uses, so one that answers nothing is one line naming the profile, exit 2, nothing written
    (optimise and serve alike). It had been ignored: a temporary server started in its place and the flow's history
    went to it, unsaid; serve then crashed on the missing variable. The profile PREFECT_PROFILE names wins over the
    file's active one; a profile without the setting starts nothing; PREFECT_API_URL set, even empty, is Prefect's
    (an empty one starts a temporary server, as Prefect reads no profile then). A profiles file that is a folder
    or not TOML is one line too."""
    from flows.prefect_server import configured_api_url

    profiles = tmp_path / "profiles.toml"
    profiles.write_text('active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://127.0.0.1:9/api"\n'
                        '[profiles.mine]\nPREFECT_LOGGING_LEVEL = "WARNING"\n')
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    environment = {"PREFECT_PROFILES_PATH": str(profiles)}
    store = tmp_path / "store" / "mlflow.db"
    for args in (["optimise", "--n-calls", "8", "--tracking-uri", f"sqlite:///{store}"], ["serve"]):
        code, output = _run_subprocess(args, environment)
        assert code == 2 and len(output.strip().splitlines()) == 1 and "Traceback" not in output, output
        assert "http://127.0.0.1:9/api" in output and not store.parent.exists(), output
    assert f"PREFECT_API_URL of Prefect profile 'team' ({profiles})=http://127.0.0.1:9/api: no Prefect server " \
           f"answers there" in _run_subprocess(["optimise", "--n-calls", "8"], environment)[1]
    shapes = {"not TOML": 'active = "team"\n[profiles.team\n', "profiles a number": 'active = "a"\nprofiles = 5\n',
              "a profile a number": '[profiles]\na = 5\n',
              "a URL a number": 'active = "a"\n[profiles.a]\nPREFECT_API_URL = 5\n'}
    for number, (shape, text) in enumerate(shapes.items()):
        (tmp_path / f"broken{number}.toml").write_text(text)
    # a folder; each broken shape read from PREFECT_PROFILES_PATH and as PREFECT_HOME's own profiles.toml
    for broken in [tmp_path, *(tmp_path / f"broken{n}.toml" for n in range(len(shapes)))]:
        home = tmp_path / f"home-{broken.name}"
        home.mkdir()
        if broken.is_file():
            (home / "profiles.toml").write_text(broken.read_text())
        for variables in ({"PREFECT_PROFILES_PATH": str(broken)}, {"PREFECT_HOME": str(home)}):
            if "PREFECT_HOME" in variables and not broken.is_file():
                continue
            for args in (["optimise", "--n-calls", "8", "--tracking-uri", f"sqlite:///{store}"], ["serve"]):
                code, output = _run_subprocess(args, variables)
                assert code == 2 and len(output.strip().splitlines()) == 1 and "Traceback" not in output, output
                assert ("profiles file" in output or "not an address" in output) and not store.parent.exists(), output
    profiles_garbage = tmp_path / "garbage.toml"
    profiles_garbage.write_text('active = "t"\n[profiles.t]\nPREFECT_API_URL = "garbage"\n')
    code, output = _run_subprocess(["serve"], {"PREFECT_PROFILES_PATH": str(profiles_garbage)})
    assert code == 2 and "=garbage: must start with http:// or https://" in output, output
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_PROFILES_PATH", str(profiles))
        patch.setitem(sys.modules, "prefect", None)  # as in a fresh command: Prefect not imported yet
        patch.delitem(sys.modules, "prefect")
        assert configured_api_url()[0] == "http://127.0.0.1:9/api"
        patch.setenv("PREFECT_PROFILE", "mine")
        assert configured_api_url() == (None, "")
        patch.delenv("PREFECT_PROFILE")
        patch.setenv("PREFECT_API_URL", "")
        assert configured_api_url() == (None, "PREFECT_API_URL")


def test_a_prefect_profile_without_an_api_url_runs_on_a_temporary_server(tmp_path, monkeypatch):
    """A profiles file named by PREFECT_PROFILES_PATH whose active profile sets something else (a logging level)
    leaves the command to its temporary server: checking the setting had imported Prefect before that server's URL
    was set, so the flow found none ('No Prefect API URL provided', exit 1, a store made and no run)."""
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('active = "a"\n[profiles.a]\nPREFECT_LOGGING_LEVEL = "WARNING"\n')
    config = tmp_path / "tiny.yaml"
    config.write_text("optimiser: {n_calls: 4, n_initial_points: 2, batch_size: 2}\nphysics_check: {top_k: 0}\n")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    store = tmp_path / "store" / "mlflow.db"
    code, output = _run_subprocess(["optimise", "--config", str(config), "--tracking-uri", f"sqlite:///{store}"],
                                   {"PREFECT_PROFILES_PATH": str(profiles), "PREFECT_HOME": str(tmp_path / "home")})
    assert code == 0 and "Traceback" not in output, output[-2000:]
    assert _runs_in(store) >= 1


def test_a_prefect_setting_the_temporary_server_cannot_start_with_is_named(tmp_path):
    """A setting Prefect's parser accepts but its server cannot use (a database it cannot reach) had ended in one
    line naming only the server's log: the line quotes the log's last line and names the PREFECT_* settings set
    here, which the server reads, as suspects (a crash may have other causes: exit 1, with the advice to start a
    server), and masks the database's password. A process of its own, so no server of the session answers."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("PREFECT_") or name == "PREFECT_SERVER_ANALYTICS_ENABLED"}
    environment |= {"PREFECT_HOME": str(tmp_path / "home"),
                    "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://u:{SECRET}@127.0.0.1:1/db"}
    snhc = Path(sys.executable).with_name("snhc")
    result = subprocess.run([str(snhc), "optimise", "--n-calls", "4", "--tracking-uri",
                             f"sqlite:///{tmp_path}/mlflow.db"], capture_output=True, text=True, timeout=180,
                            cwd=tmp_path, env=environment)
    line = next(line for line in result.stderr.splitlines() if line.startswith("snhc optimise: error:"))
    assert result.returncode == 1, result.stderr
    assert "temporary server exited" in line and "PREFECT_SERVER_DATABASE_CONNECTION_URL, set here" in line
    assert "prefect server start" in line and SECRET not in result.stderr + result.stdout
