"""What a campaign's child run costs to log, with SQLite's rollback journal and with write-ahead logging (WAL).

A default campaign logs one child run per evaluation (``flows.tracking.Tracker.log_evaluation``: create the run, one
``log_batch`` of its recipe and metrics with their 90 % bands, terminate it). This script logs the same child runs
into two fresh stores in one process, one in SQLite's default rollback journal (``DELETE``) and one in ``WAL``,
alternating store by store so both see the same machine, and prints milliseconds per child run and their ratio.
Measured WAL / DELETE 0.81-1.00 over three runs (40 child runs of 73 metrics): at best ~0.2 s of a 40-evaluation
campaign, and no difference in benchmarks/optimise_wall.py; the project keeps SQLite's default journal, without the
-wal and -shm files WAL keeps beside the store.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/mlflow_logging.py [--runs 40] [--rounds 3] [--json]``
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.config import load_config  # noqa: E402
from flows.evaluation import campaign_parameters, evaluate_batch  # noqa: E402
from flows.tracking import Tracker  # noqa: E402

MODES = ("DELETE", "WAL")  # SQLite's default journal; the project's


def child_run_ms(folder: Path, mode: str, evaluation, runs: int) -> float:
    """Milliseconds per child run logged into a new store in ``folder`` with the journal ``mode``."""
    database = folder / f"{mode.lower()}.db"
    connection = sqlite3.connect(database)  # an empty database in that mode (WAL is stored in the file)
    try:
        connection.execute(f"PRAGMA journal_mode={mode}")
    finally:
        connection.close()
    tracker = Tracker(f"sqlite:///{database}", "logging-benchmark")  # MLflow builds its schema in it
    parent = tracker.start_run("campaign")
    start = time.perf_counter()
    bands = {name: [0.9 * value, 1.1 * value] for name, value in evaluation.metrics.items()}  # as a campaign logs
    for index in range(runs):
        tracker.log_evaluation(parent, index, index // 4, evaluation, bands)
    return 1000.0 * (time.perf_counter() - start) / runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="child runs per store (a default campaign's 40)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh store pairs; the median is reported")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    config = load_config()
    p, _ = campaign_parameters(config)
    evaluation, = evaluate_batch([{"sn_mass_fraction": 2 / 3, "milling_time_h": 10.0, "milling_speed_rpm": 400.0,
                                   "ball_to_powder_ratio": 20.0}], p, config.objective)
    timings: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as root:
        for round_ in range(args.rounds):
            for mode in MODES:
                folder = Path(root) / f"round{round_}"
                folder.mkdir(exist_ok=True)
                timings[mode].append(child_run_ms(folder, mode, evaluation, args.runs))
    median = {mode: statistics.median(values) for mode, values in timings.items()}
    result = {"child_runs": args.runs, "metrics_per_child_run": 3 * len(evaluation.metrics) + 1,
              "ms_per_child_run": median, "per_round_ms": timings, "wal_to_delete_ratio": median["WAL"] / median["DELETE"]}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.runs} child runs of {result['metrics_per_child_run']} metrics, {args.rounds} rounds (median):")
    for mode in MODES:
        print(f"  {mode:6s} {median[mode]:6.1f} ms per child run   per round: "
              + ", ".join(f"{v:.1f}" for v in timings[mode]))
    print(f"  WAL / DELETE: {result['wal_to_delete_ratio']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
