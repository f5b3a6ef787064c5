"""Starting the temporary Prefect server (flows/prefect_server.py): its first API request is sent as soon as it
answers, so it initialises itself while the command is still importing, not when the flow starts; a server that
never answers, or exits while starting, is one line saying what to do."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flows.prefect_server import _first_requests


class _Process:
    """Stands in for the server's Popen: alive until ``exited`` is set."""

    def __init__(self):
        self.exited = False

    def poll(self):
        return 1 if self.exited else None


def _fake_api(answers_after: int):
    """A local HTTP server whose /api/health fails ``answers_after`` times, then answers; it records every path."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            seen.append(self.path)
            ok = not (self.path.endswith("/health") and seen.count(self.path) <= answers_after)
            self.send_response(200 if ok else 503)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/api", seen


def test_the_first_api_request_follows_the_first_healthy_answer():
    server, url, seen = _fake_api(answers_after=2)
    try:
        _first_requests(url, _Process())
    finally:
        server.shutdown()
    assert seen == ["/api/health"] * 3 + ["/api/admin/version"]


def test_nothing_is_sent_once_the_server_process_has_exited():
    server, url, seen = _fake_api(answers_after=0)
    process = _Process()
    process.exited = True
    try:
        _first_requests(url, process)
    finally:
        server.shutdown()
    assert seen == []


def test_a_server_that_never_answers_or_exits_while_starting_gets_one_line_saying_what_to_do(monkeypatch, tmp_path):
    import socket
    import subprocess
    import sys

    import pytest

    from flows.prefect_server import PrefectStartupError, TemporaryServer

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        silent = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    monkeypatch.setenv("SNHC_PREFECT_STARTUP_TIMEOUT_S", "1")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    server = TemporaryServer(alive, silent, tmp_path / "server.log")
    with pytest.raises(PrefectStartupError, match="did not answer within 1 s"):
        server.wait()
    assert alive.poll() is not None  # stopped, not left running

    exited = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"], start_new_session=True)
    exited.wait()
    with pytest.raises(PrefectStartupError, match="exited with code 3"):
        TemporaryServer(exited, silent, tmp_path / "server.log").wait()


def test_a_stopped_server_leaves_its_log_only_when_it_wrote_something(tmp_path):
    """One empty /tmp/snhc-prefect-server-<pid>.log was left per command; a log with the server's errors stays."""
    import subprocess
    import sys

    from flows.prefect_server import TemporaryServer

    for text, kept in (("", False), ("ERROR: address already in use\n", True)):
        log = tmp_path / "server.log"
        log.write_text(text)
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        TemporaryServer(process, "http://127.0.0.1:9/api", log).stop()
        assert process.poll() is not None
        assert log.exists() is kept


@pytest.mark.parametrize("text", ["1_0", "ten", "nan", "0.5", "1e9"])
def test_a_startup_limit_that_is_not_a_plain_number_of_seconds_is_one_line(monkeypatch, text):
    """The start-up limit follows the project's one rule for numbers: "1_0" (Python's 10) is a typing error, NaN
    and values outside 1-3600 s are out of range."""
    from flows.prefect_server import PrefectSettingError, startup_timeout_s

    monkeypatch.setenv("SNHC_PREFECT_STARTUP_TIMEOUT_S", text)
    with pytest.raises(PrefectSettingError, match="SNHC_PREFECT_STARTUP_TIMEOUT_S="):
        startup_timeout_s()
