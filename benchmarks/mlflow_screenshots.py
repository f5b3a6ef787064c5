"""Screenshots of the MLflow UI after two campaigns and a what-if study, as a researcher would open them.

What it does, in one run on this machine:

1. runs two small campaigns of the default config with different seeds (``snhc optimise``) and the shipped what-if
   study (``snhc what-if configs/whatif``) into a temporary SQLite store, through the real command line;
2. starts ``mlflow ui`` on a free 127.0.0.1 port over that store;
3. takes screenshots with headless Chromium of: the campaigns' runs list, one campaign's run page (description with
   the recommendation), its recommendation table artifact, the what-if runs list and the what-if comparison plot;
4. stops the server by its PID and prints the folder of the PNGs (``--json``: the paths and run ids as JSON).

Chromium is the Debian ``chromium`` package (``apt-get install -y chromium``).

Run: ``.venv/bin/python benchmarks/mlflow_screenshots.py [--output DIR] [--n-calls N] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1800,1100", "--virtual-time-budget=20000",
                  "--run-all-compositor-stages-before-draw"]  # without it the metric charts stay loading spinners


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def snhc(*args: str, env: dict) -> str:
    """Run the command line; its stdout (the JSON of --json commands)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    print(f"snhc {' '.join(args[:2])} ... : exit {done.returncode} in {time.monotonic() - started:.0f} s",
          file=sys.stderr)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return done.stdout


def wait_for(url: str, timeout_s: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow ui exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout_s} s")


def chromium_path() -> str | None:
    """The headless Chromium to take screenshots with, or None."""
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def screenshot(url: str, path: Path, profile: Path) -> Path:
    subprocess.run([chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}", url],
                   capture_output=True, timeout=120, check=False)
    if not path.exists():
        raise RuntimeError(f"chromium wrote no screenshot of {url}")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="folder of the PNGs (default: a new temporary folder)")
    parser.add_argument("--n-calls", type=int, default=8, help="evaluations per campaign (default 8)")
    parser.add_argument("--json", action="store_true", help="print the paths and run ids as JSON")
    parser.add_argument("--work", help="work folder to reuse (its store keeps campaigns already run; default: new)")
    args = parser.parse_args()
    if chromium_path() is None:  # checked before the campaigns run, not after minutes of them
        print("headless Chromium not found (looked for `chromium` on PATH and /usr/bin/chromium): install it, e.g. "
              "`apt-get install chromium`", file=sys.stderr)
        return 2

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="snhc-mlflow-shots-"))
    work.mkdir(parents=True, exist_ok=True)
    output = Path(args.output) if args.output else work / "screenshots"
    output.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{work}/mlruns/mlflow.db"
    env = os.environ | {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                        "PYBAMM_DISABLE_TELEMETRY": "true", "PREFECT_HOME": str(work / "prefect"),
                        "COLUMNS": "160"}
    env.pop("PREFECT_API_URL", None)
    tiny = work / "tiny.yaml"  # the default campaign with a small budget and a two-recipe physics check
    tiny.write_text((ROOT / "configs" / "default.yaml").read_text().replace("n_calls: 40", f"n_calls: {args.n_calls}")
                    .replace("n_initial_points: 10", "n_initial_points: 4").replace("top_k: 5", "top_k: 2"))

    sys.path.insert(0, str(ROOT))
    from mlflow.tracking import MlflowClient

    def campaign_runs():
        experiment = MlflowClient(uri).get_experiment_by_name("snhc-optimisation")
        return experiment, ([] if experiment is None else MlflowClient(uri).search_runs(
            [experiment.experiment_id], "tags.campaign = 'default' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time ASC"]))

    for seed in (1, 2)[len(campaign_runs()[1]) if (work / "mlruns").exists() else 0:]:
        snhc("optimise", "--config", str(tiny), "--seed", str(seed), "--tracking-uri", uri, env=env)
    study = json.loads(snhc("what-if", "configs/whatif", "--config", str(tiny), "--tracking-uri", uri, "--json",
                            "--output", str(work / "whatif-results"), env=env))

    campaigns, parents = campaign_runs()
    campaign_run = parents[0].info.run_id

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host",
                               "127.0.0.1", "--port", str(port), "--workers", "1"], env=env,
                              stdout=open(work / "mlflow-ui.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    shots = {}
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/health", 120, server)
        profile = work / "chromium-profile"
        classic = "?workflowType=machine_learning"  # MLflow 3.17's "Model training" view, not its GenAI view
        campaign_page = f"{base}/#/experiments/{campaigns.experiment_id}/runs/{campaign_run}"
        whatif_page = f"{base}/#/experiments/{study['experiment_id']}/runs/{study['run_id']}"
        pages = {
            "campaign_runs": f"{base}/#/experiments/{campaigns.experiment_id}/runs{classic}",
            "campaign_run": f"{campaign_page}{classic}",
            "campaign_recommendation": f"{campaign_page}/artifacts/recommendation.json{classic}",
            "campaign_charts": f"{campaign_page}/model-metrics{classic}",
            "whatif_runs": f"{base}/#/experiments/{study['experiment_id']}/runs{classic}",
            "whatif_run": f"{whatif_page}{classic}",
            "whatif_table": f"{whatif_page}/artifacts/what_if_comparison.json{classic}",
            "whatif_comparison": f"{whatif_page}/artifacts/what_if_comparison.png{classic}",
        }
        for name, url in pages.items():
            shots[name] = str(screenshot(url, output / f"{name}.png", profile))
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
    result = {"screenshots": shots, "folder": str(output), "tracking_uri": uri,
              "campaign_run_names": [r.info.run_name for r in parents], "whatif_run_id": study["run_id"]}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"campaign runs: {', '.join(result['campaign_run_names'])}")
        for name, path in shots.items():
            print(f"{name}: {path}")
        print(f"screenshots in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
