"""The temporary Prefect server is sent its first API request as soon as it answers (flows/prefect_server.py), so it
initialises itself while the command is still importing, not when the flow starts."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
