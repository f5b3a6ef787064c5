"""Scheduled deployments: a nightly optimisation and a weekly what-if set, served by ``snhc serve``.

Cron schedules need a real Prefect server (``prefect server start``); Prefect's temporary local server refuses to
schedule. The cron times and their time zone come from ``configs/schedules.yaml`` (default UTC), so a schedule means
the same on every server; ``build_deployments(timezone=...)`` overrides the zone.
"""

from __future__ import annotations

import zoneinfo

from prefect import serve
from prefect.schedules import Cron

from flows.inputs import InputError, read_yaml_mapping
from flows.optimise import optimise_anode
from flows.whatif import what_if
from surrogate.paths import config_dir
from surrogate.yaml_safety import excerpt

SCHEDULE_KEYS = ("timezone", "nightly_optimisation", "weekly_what_if")


def load_schedules(path=None) -> dict[str, str]:
    """``configs/schedules.yaml``, checked as Prefect will read it: exactly its three keys, each cron a valid
    five-field expression and the time zone an IANA name; a problem is one :class:`InputError` line naming the key.
    """
    from pydantic import ValidationError
    from prefect.client.schemas.schedules import CronSchedule

    path = path or config_dir() / "schedules.yaml"
    document = read_yaml_mapping(path, "schedules file")
    if set(document) != set(SCHEDULE_KEYS):
        raise InputError(f"{path}: expected exactly the keys {list(SCHEDULE_KEYS)}, got {sorted(map(str, document))}")
    zone = document["timezone"]
    if not isinstance(zone, str) or zone not in zoneinfo.available_timezones() or zone in LOCAL_CLOCK_ZONES:
        raise InputError(f"{path}: timezone {excerpt(zone)} is not an IANA time zone (e.g. UTC, Europe/London; not "
                         f"the server's local clock)")
    for key in ("nightly_optimisation", "weekly_what_if"):
        cron = document[key]
        five_fields = (f"{path}: {key} {excerpt(cron)} is not a cron expression (five fields: minute hour "
                       f"day-of-month month day-of-week)")
        # Prefect reads a sixth field as seconds; a macro (@daily, @weekly) is one word Prefect reads itself
        if not isinstance(cron, str) or (len(cron.split()) != 5 and not cron.strip().startswith("@")):
            raise InputError(five_fields)
        try:
            CronSchedule(cron=cron, timezone=zone)
        except (ValidationError, ValueError, TypeError):
            raise InputError(five_fields) from None
        if not _fires(cron, zone):
            raise InputError(f"{path}: {key} {excerpt(cron)} never fires (a date that does not exist, e.g. 30 "
                             f"February): the deployment would never run")
    return document


# Names zoneinfo knows that follow the machine's own clock, which a schedule file exists to avoid
LOCAL_CLOCK_ZONES = ("localtime", "Factory")
FIRES_WITHIN_YEARS = 8  # a valid date recurs within 8 years (29 February: 4, or 8 across a skipped leap year)


def _fires(cron: str, zone: str) -> bool:
    """Whether the cron has a next date within :data:`FIRES_WITHIN_YEARS` (read by the croniter Prefect's
    scheduler runs; 30 February made the server log an error every loop and the deployment never ran)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    try:
        from prefect._vendor.croniter import croniter
    except ImportError:  # a Prefect without its vendored croniter: its own validation is all we have
        return True
    start = datetime.now(ZoneInfo(zone))
    try:
        following = croniter(cron, start).get_next(datetime)
    except Exception:  # noqa: BLE001 - croniter's CroniterBadDateError: no such date
        return False
    return (following - start).days <= 366 * FIRES_WITHIN_YEARS


SCHEDULES = load_schedules()
NIGHTLY_CRON = SCHEDULES["nightly_optimisation"]
WEEKLY_WHAT_IF_CRON = SCHEDULES["weekly_what_if"]
TIMEZONE = SCHEDULES["timezone"]


def build_deployments(config_path: str = "configs/default.yaml", whatif_path: str = "configs/whatif",
                      overrides: dict | None = None, timezone: str | None = None):
    """The project's deployments, with their cron schedules (in ``timezone``, default from the config) and default
    parameters."""
    overrides = overrides or {}
    zone = timezone or TIMEZONE
    return [
        optimise_anode.to_deployment(
            name="nightly-optimisation", schedule=Cron(NIGHTLY_CRON, timezone=zone), tags=["snhc", "optimisation"],
            description="Default Sn/HC optimisation campaign, every night.",
            parameters={"config_path": config_path, "overrides": overrides}),
        what_if.to_deployment(
            name="weekly-what-if", schedule=Cron(WEEKLY_WHAT_IF_CRON, timezone=zone), tags=["snhc", "what-if"],
            description="Every what-if scenario in configs/whatif, every Monday.",
            parameters={"scenario_paths": [whatif_path], "config_path": config_path, "overrides": overrides}),
    ]


def serve_deployments(**kwargs) -> None:
    """Register the deployments with the Prefect server and run their scheduled flow runs (blocks)."""
    serve(*build_deployments(**kwargs))
