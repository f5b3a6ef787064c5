"""How long a default `snhc optimise` takes, start-up counted, and where the time goes (issue 13's done-when).

Each run is a fresh process, as a user types it, with Prefect's temporary server (set PREFECT_API_URL to measure
against a running one). The runs share one MLflow store in a temporary folder: the first creates it (MLflow migrates
a new SQLite database, seconds), and is reported apart; the median is over the others, as a user's second and later
campaigns run. The phases come from when the
flow's own lines reach the benchmark: its output is read unbuffered, line by line, and each line stamped on arrival
(the console's notes and batch lines carry no timestamp, and Prefect's console handler leaves them out):

- ``start_up_s``: from the command to Prefect's "Beginning flow run" (imports, config and lab checks, the temporary
  server's start);
- ``search_s``: to the last optimiser batch (calibration load, the batches with their child runs and intervals);
- ``dense_search_s``: to the model-optimum line (the dense search runs in a thread beside the optimiser's search,
  so this is the wait for what is left of it, and its two candidates' evaluation and child runs);
- ``physics_check_and_report_s``: from there to the process's exit (PyBaMM, the recommendation's intervals, figures,
  MLflow artifacts, the Prefect artifact, shutdown).

Target: at most 15 s wall on an idle machine (40 evaluations, physics check included). Machines are shared and
noisy: run it on an idle one, and read the phases against each other in one run.

Run: ``.venv/bin/python benchmarks/optimise_wall.py [--runs 3] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 15.0
MARKERS = {"flow_start": "Beginning flow run", "last_batch": "/40 evaluations", "dense": "model optimum"}


def one_run(folder: str) -> dict[str, float]:
    """One fresh ``snhc optimise``: its wall time and the seconds at which each marker line arrived."""
    clock = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "flows.cli", "optimise", "--tracking-uri",
                                f"sqlite:///{folder}/mlflow.db"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env=os.environ | {"COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    seen: dict[str, float] = {}
    tail: list[str] = []
    for line in process.stdout:
        arrived = time.perf_counter() - clock
        tail = (tail + [line])[-40:]
        for name, marker in MARKERS.items():
            if marker in line:
                seen[name] = arrived  # the last match of each marker wins
    returncode = process.wait()
    wall = time.perf_counter() - clock
    if returncode != 0:
        raise SystemExit(f"snhc optimise failed ({returncode}): {''.join(tail)[-2000:]}")
    missing = set(MARKERS) - set(seen)
    if missing:
        raise SystemExit(f"log lines not found: {sorted(missing)}")
    return {"wall_s": wall, "start_up_s": seen["flow_start"], "search_s": seen["last_batch"] - seen["flow_start"],
            "dense_search_s": seen["dense"] - seen["last_batch"], "physics_check_and_report_s": wall - seen["dense"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        first = one_run(folder)
        runs = [one_run(folder) for _ in range(args.runs)]
    figures = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
    document = {"runs": args.runs, "median": figures, "per_run": runs, "first_run_new_store": first,
                "target_wall_s": TARGET_S, "meets_target": figures["wall_s"] <= TARGET_S, "cores": os.cpu_count()}
    if args.json:
        print(json.dumps(document, indent=2))
        return
    print(f"snhc optimise (default config), fresh processes on {os.cpu_count()} cores: the first on a new MLflow "
          f"store, then the median of {args.runs} on that store (s):")
    print(f"  {'phase':28s} {'new store':>9s} {'median':>7s}")
    for name, value in figures.items():
        print(f"  {name:28s} {first[name]:9.1f} {value:7.1f}")
    print(f"target: wall <= {TARGET_S:g} s: {'MET' if document['meets_target'] else 'NOT MET'}")


if __name__ == "__main__":
    main()
