"""How fast the command line answers: `snhc --help`, `snhc --version` and a bad option (exit 2), start-up included.

Each command runs as a fresh process, as a user types it; the script prints the median and the worst of N runs
(``--runs``), and with ``--json`` one JSON object. Target (issue: reviewing campaigns): `snhc --help` under 1 s on an
idle machine.

Run: ``.venv/bin/python benchmarks/cli_startup.py [--runs 7] [--json]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "help": ["--help"],
    "version": ["--version"],
    "bad_option": ["predict", "--sn-mass-fraction", "2"],
}


def timed(arguments: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "flows.cli", *arguments], cwd=ROOT, capture_output=True)
    return time.perf_counter() - start, result.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command (default 7)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    figures = {}
    for name, arguments in COMMANDS.items():
        runs = [timed(arguments) for _ in range(args.runs)]
        seconds = [s for s, _ in runs]
        figures[name] = {"median_s": statistics.median(seconds), "max_s": max(seconds),
                         "exit_codes": sorted({code for _, code in runs})}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for name, figure in figures.items():
        print(f"snhc {' '.join(COMMANDS[name]):<40} median {figure['median_s']:.2f} s, worst {figure['max_s']:.2f} s, "
              f"exit {figure['exit_codes']}")


if __name__ == "__main__":
    main()
