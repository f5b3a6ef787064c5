"""Shared fixtures: an isolated calibration cache, the calibrated parameters and the study's named materials."""

import os

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Every test session fits its own calibration into a temporary cache, never the developer's."""
    path = tmp_path_factory.mktemp("snhc_cache")
    previous = os.environ.get("SNHC_CACHE_DIR")
    os.environ["SNHC_CACHE_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("SNHC_CACHE_DIR", None)
    else:
        os.environ["SNHC_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def params(isolated_cache):
    from surrogate.calibration import calibrated_parameters

    return calibrated_parameters()


@pytest.fixture(scope="session")
def materials():
    from surrogate.paths import config_dir
    from surrogate.recipe import load_materials

    return load_materials(config_dir() / "materials.yaml")


@pytest.fixture(scope="session")
def predict(params, materials):
    """predict(name, **request) -> Prediction of one named material."""
    from surrogate.model import PredictionRequest, predict as model_predict

    def run(name, **request):
        return model_predict(materials[name], params, PredictionRequest(**request))

    return run


@pytest.fixture(scope="session")
def prefect_local():
    """One Prefect test harness (temporary database and server) for the whole session: it costs ~8 s."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout_s: float, process=None) -> None:
    """Poll a URL until it answers 200; fail early if the server process died."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


def stop(process) -> None:
    """Stop a server we started, by PID (its whole process group), and reap it."""
    import os
    import signal
    import subprocess

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


PREFECT_RETRY_STATUSES = (429, 502, 503)  # busy server (its SQLite locked): retry, as Prefect's own client does
PREFECT_RETRY_DELAYS_S = (1, 2, 4, 8, 15)


def prefect_api(base: str, path: str, payload=None, method: str = "POST"):
    """Call a Prefect server's REST API (JSON in, JSON out), retrying while the server says it is busy."""
    import json
    import time
    import urllib.error
    import urllib.request

    for delay in (*PREFECT_RETRY_DELAYS_S, None):
        request = urllib.request.Request(f"{base}{path}", method=method,
                                         headers={"Content-Type": "application/json"},
                                         data=None if payload is None else json.dumps(payload).encode())
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            if error.code not in PREFECT_RETRY_STATUSES or delay is None:
                raise
            time.sleep(delay)


def wait_for_flow_run(base: str, flow_run_id: str, timeout_s: float) -> str:
    """Poll a flow run until it reaches a terminal state; returns the state type."""
    import time

    deadline = time.monotonic() + timeout_s
    state = None
    while time.monotonic() < deadline:
        state = prefect_api(base, f"/flow_runs/{flow_run_id}", method="GET")["state"]["type"]
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state
        time.sleep(2)
    return state
