"""A Prefect API for one command: a running server is reused, else a temporary one is started out of harm's way.

Prefect's own temporary server starts inside the command's process group with a 20 s start-up limit: on a busy
machine it often misses that limit, and Ctrl-C kills it first, so the campaign then hangs on connection errors.
This module starts the same temporary server (Prefect's ASGI app under uvicorn, no UI) itself:

* in its own session, so Ctrl-C and SIGTERM reach the campaign, which stops cleanly, and not the server;
* before the science stack is imported, so its start overlaps with building the campaign (:func:`start`), and
  only then waits for it (:meth:`TemporaryServer.wait`) with a generous, configurable limit
  (``SNHC_PREFECT_STARTUP_TIMEOUT_S``, default :data:`DEFAULT_STARTUP_TIMEOUT_S`);
* and stops it when the command ends - also when the command is killed outright (SIGKILL, an OOM kill), which no
  exit handler sees: the server watches its parent and stops itself once that is gone (:func:`serve`), instead of
  running on, orphaned, for good.

With ``PREFECT_API_URL`` set (a team's ``prefect server start``, or a server left running for several commands),
in the environment or in the active Prefect profile (:func:`configured_api_url`), that server is used as it is,
after a quick health check.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from pathlib import Path

from flows.inputs import InputError, prefect_profiles_path, redact
from surrogate.yaml_safety import excerpt, plain_number

DEFAULT_STARTUP_TIMEOUT_S = 180.0  # a busy 2-core machine has been seen to need over 60 s
HEALTH_CHECK_TIMEOUT_S = 3.0
STARTUP_POLL_S = 0.2  # while a temporary server starts: how often it is asked whether it answers
STARTUP_POLL_TIMEOUT_S = 1.0  # and how long each such question may take
PARENT_POLL_S = 1.0  # how often the temporary server checks that the command which started it is alive
LOG_LINE_CHARS = 160  # of the server's log quoted in a start-up error
SHUTDOWN_GRACE_S = 10.0  # after its command is gone, the server's own graceful stop gets this long


def _user_prefect_settings() -> list[str]:
    """The Prefect settings the user set in the environment (not the ones this project sets for its own runs)."""
    from flows.inputs import OWN_PREFECT_ENVIRONMENT

    return sorted(name for name in os.environ if name.startswith("PREFECT_") and name not in OWN_PREFECT_ENVIRONMENT)


def _last_log_line(path) -> str:
    """The last line of the server's log that says something, its credentials masked (as every error line is),
    cut to a readable length."""
    from flows.inputs import redact_message

    try:
        lines = [line.strip() for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    if not lines:
        return "its log is empty"
    line = redact_message(lines[-1])
    return line if len(line) <= LOG_LINE_CHARS else line[:LOG_LINE_CHARS - 3] + "..."


class PrefectStartupError(RuntimeError):
    """The temporary Prefect server could not be started; the message says what to do (exit 1)."""


class PrefectSettingError(InputError):
    """A Prefect setting is wrong (``PREFECT_API_URL`` answers nothing, a bad start-up limit): bad input, exit 2."""


def startup_timeout_s() -> float:
    text = os.environ.get("SNHC_PREFECT_STARTUP_TIMEOUT_S", "")
    try:
        value = plain_number(text) if text else DEFAULT_STARTUP_TIMEOUT_S  # "1_0" is a typing error, not 10
    except ValueError:
        raise PrefectSettingError(f"SNHC_PREFECT_STARTUP_TIMEOUT_S={text!r} is not a number of seconds") from None
    if not 1.0 <= value <= 3600.0:
        raise PrefectSettingError(f"SNHC_PREFECT_STARTUP_TIMEOUT_S={text} is out of range: allowed 1 to 3600")
    return value


def healthy(api_url: str, timeout_s: float = HEALTH_CHECK_TIMEOUT_S) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout_s) as response:
            return response.status == 200
    except OSError:
        return False


class TemporaryServer:
    """A Prefect server process for the life of one command."""

    def __init__(self, process: subprocess.Popen | None, api_url: str, log_path: Path | None,
                 previous_api_url: str | None = None, start_lock=None):
        self.process = process
        self.api_url = api_url
        self.log_path = log_path
        self.previous_api_url = previous_api_url
        self.start_lock = start_lock  # held until the server answers (see start)

    def wait(self) -> None:
        """Block until the API answers; a one-line :class:`PrefectStartupError` if it does not in time."""
        if self.process is None:
            return
        try:
            self._wait()
        finally:
            if self.start_lock is not None:
                self.start_lock.release()
                self.start_lock = None

    def _wait(self) -> None:
        limit = startup_timeout_s()
        if _answers(self.api_url, self.process, limit):
            return
        if self.process.poll() is not None:
            settings = _user_prefect_settings()  # the server reads them: a database URL or a logging file it
            # cannot use had ended in a line naming nothing but the log; they are suspects, not known culprits
            suspects = f"; it reads {', '.join(settings)}, set here: check them" if settings else ""
            raise PrefectStartupError(
                f"Prefect's temporary server exited with code {self.process.returncode} while starting "
                f"({_last_log_line(self.log_path)}){suspects}; or start one yourself with `prefect server start` "
                f"and set PREFECT_API_URL (log: {self.log_path})")
        self.stop()
        raise PrefectStartupError(
            f"Prefect's temporary server did not answer within {limit:g} s (a busy machine?): raise "
            f"SNHC_PREFECT_STARTUP_TIMEOUT_S, or start a server with `prefect server start` and set PREFECT_API_URL")

    def release(self) -> None:
        """The command is done with the server: restore ``PREFECT_API_URL``. The process itself stops at exit,
        after Prefect's own exit handlers have flushed their logs to it (stopping it earlier makes them retry)."""
        if self.start_lock is not None:
            self.start_lock.release()
            self.start_lock = None
        if self.process is not None and os.environ.get("PREFECT_API_URL") == self.api_url:
            if self.previous_api_url is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = self.previous_api_url

    def stop(self) -> None:
        """Stop a server this command started (a reused one is left alone)."""
        self.release()
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except OSError:
                    pass
        self.process = None
        self._remove_empty_log()

    def _remove_empty_log(self) -> None:
        """The server's log is kept to diagnose a failed start; an empty one (a clean run at log level error) is
        removed, so /tmp does not gather one file per command."""
        try:
            if self.log_path is not None and self.log_path.stat().st_size == 0:
                self.log_path.unlink()
        except OSError:
            pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api_url_of_loaded_prefect() -> str | None:
    """The API URL of a Prefect already imported and configured in this process (e.g. a test harness)."""
    if "prefect" not in sys.modules:
        return None
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


def configured_api_url() -> tuple[str | None, str]:
    """The Prefect API this command is told to use, and where that was said: ``PREFECT_API_URL`` in the
    environment, else in the active profile of Prefect's profiles file (``PREFECT_PROFILES_PATH``, else
    ``$PREFECT_HOME/profiles.toml``, ``~/.prefect/profiles.toml`` unless set; the profile ``PREFECT_PROFILE`` names,
    else the file's ``active`` one), as ``prefect config set PREFECT_API_URL=...`` writes it; (None, "") when
    neither sets it. Read as Prefect reads it, without importing Prefect (seconds of start-up): a profile's URL had
    been ignored, and a temporary server started in its place, though Prefect's profiles apply."""
    if "PREFECT_API_URL" in os.environ:  # set, even empty: Prefect then reads no profile's either
        return os.environ["PREFECT_API_URL"] or None, "PREFECT_API_URL"
    url, where = _profile_api_url()  # first: an unreadable profiles file is one line, not Prefect's traceback
    if url is None and (loaded := _api_url_of_loaded_prefect()):
        return loaded, "PREFECT_API_URL"
    return url, where


def _profile_api_url() -> tuple[str | None, str]:
    """The active Prefect profile's ``PREFECT_API_URL`` (:func:`configured_api_url`)."""
    path = prefect_profiles_path()
    if not path.is_file():
        return None, ""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise PrefectSettingError(f"Prefect's profiles file {path}: cannot be read ({type(error).__name__}: "
                                  f"{excerpt(str(error))}); fix it or point PREFECT_PROFILES_PATH elsewhere") from None
    active = os.environ.get("PREFECT_PROFILE") or document.get("active")
    profiles = document.get("profiles", {})
    if not (isinstance(profiles, dict) and all(isinstance(p, dict) for p in profiles.values())
            and isinstance(active, (str, type(None)))):  # Prefect's own reader raises on these, as a traceback
        raise PrefectSettingError(f"Prefect's profiles file {path}: 'active' must be a profile's name and each "
                                  f"[profiles.NAME] a table of settings; fix it or point PREFECT_PROFILES_PATH "
                                  f"elsewhere")
    profile = profiles.get(active)
    url = profile.get("PREFECT_API_URL") if isinstance(profile, dict) else None
    if url is not None and not isinstance(url, str):  # a number: Prefect's temporary server had died on it
        raise PrefectSettingError(f"PREFECT_API_URL of Prefect profile '{active}' ({path}) = {excerpt(url)}: not an "
                                  f"address; give one in quotes (\"http://127.0.0.1:4200/api\") or remove it")
    if isinstance(url, str) and url.strip():
        return url, f"PREFECT_API_URL of Prefect profile '{active}' ({path})"
    return None, ""


def start() -> TemporaryServer:
    """Reuse the configured Prefect API (:func:`configured_api_url`) if it is healthy, else start a temporary
    server (not yet waited for).

    Sets ``PREFECT_API_URL`` for this process, so call it before Prefect is imported.
    """
    startup_timeout_s()  # a bad limit is bad input: say so before anything starts
    configured, where = configured_api_url()
    if configured:
        from flows.inputs import check_health, http_url_problem

        if (problem := http_url_problem(configured)) or not healthy(configured):
            raise PrefectSettingError(f"{where}={redact(configured)}: {problem or 'no Prefect server answers there'};"
                                      f" start it (`prefect server start`) or unset it for a temporary one")
        try:  # another server that answers /health (an MLflow server's does) is not a Prefect API
            check_health(configured, where, "a Prefect API", "/admin/version")
        except InputError as error:
            raise PrefectSettingError(str(error)) from None
        return TemporaryServer(None, configured, None)
    # Servers sharing a PREFECT_HOME share its database: one that starts migrates it, and two migrating a new
    # database at once collide. So starts take turns (the lock is released once this server answers).
    from filelock import FileLock, Timeout

    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")
    try:  # a file, or a place no folder can be made, had raised from here as a traceback
        home.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PrefectSettingError(f"PREFECT_HOME={home}: cannot make or use the folder "
                                  f"({error.strerror or type(error).__name__}); give a folder that can be written, "
                                  f"or unset it") from None
    start_lock = FileLock(str(home / "snhc-server-start.lock"))
    try:
        start_lock.acquire(timeout=startup_timeout_s())
    except Timeout:
        raise PrefectStartupError(f"another snhc command has been starting a Prefect server in {home} for over "
                                  f"{startup_timeout_s():g} s; retry, or start one with `prefect server start`") from None
    spec = importlib.util.find_spec("prefect")
    app_dir = str(Path(spec.origin).parent.parent)
    port = _free_port()
    log = Path(tempfile.gettempdir()) / f"snhc-prefect-server-{os.getpid()}.log"
    environment = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                   "PREFECT__SERVER_FINAL": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.prefect_server", str(os.getpid()), "--app-dir", app_dir, "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "error", "--lifespan", "on"],
            env=environment, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)  # Ctrl-C in the terminal reaches the campaign, not the server
    server = TemporaryServer(process, f"http://127.0.0.1:{port}/api", log, os.environ.get("PREFECT_API_URL"),
                             start_lock)
    atexit.register(server.stop)
    os.environ["PREFECT_API_URL"] = server.api_url
    if "prefect.context" in sys.modules:  # imported already (a PREFECT_* setting checked by its parser): its global
        # settings were read without this URL, and a flow had then found none ('No Prefect API URL provided')
        sys.modules["prefect.context"].refresh_global_settings_context()
    threading.Thread(target=_first_requests, args=(server.api_url, process), name="prefect-warm-up",
                     daemon=True).start()
    return server


def _answers(api_url: str, process: subprocess.Popen, limit_s: float) -> bool:
    """Wait until the server at ``api_url`` answers its health check (True), or its process exits or ``limit_s``
    passes (False)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and process.poll() is None:
        if healthy(api_url, STARTUP_POLL_TIMEOUT_S):
            return True
        time.sleep(STARTUP_POLL_S)
    return False


def _first_requests(api_url: str, process: subprocess.Popen) -> None:
    """Once the temporary server answers, send it the first request a flow run sends: the server initialises
    itself on its first API request (0.4 s, measured), so it does that while this process is still importing
    and loading, not when the flow starts. Waits on sockets only (no GIL held); any failure is left for the flow
    to meet."""
    if not _answers(api_url, process, startup_timeout_s()):
        return
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/admin/version",
                                    timeout=HEALTH_CHECK_TIMEOUT_S) as response:
            response.read()
    except OSError:
        pass


def serve(parent_pid: int, uvicorn_args: list[str]) -> None:
    """Run the temporary server (uvicorn with ``uvicorn_args``) for as long as process ``parent_pid`` lives.

    A thread polls the parent every :data:`PARENT_POLL_S`; once the server has been re-parented (its command was
    killed without running its exit handlers), it sends itself SIGTERM, which uvicorn answers with a graceful stop,
    and exits outright if that takes longer than :data:`SHUTDOWN_GRACE_S`.
    """
    def watch_parent() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(SHUTDOWN_GRACE_S)
        os._exit(1)

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    import uvicorn

    sys.argv = ["uvicorn", *uvicorn_args]
    uvicorn.main()


if __name__ == "__main__":  # python -m flows.prefect_server PARENT_PID UVICORN_ARGS... (started by start())
    serve(int(sys.argv[1]), sys.argv[2:])
