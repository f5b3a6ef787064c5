"""Scheduled deployments: a nightly optimisation and a weekly what-if set, served by ``snhc serve``.

Cron schedules need a real Prefect server (``prefect server start``); Prefect's temporary local server refuses to
schedule. The cron times and their time zone come from ``configs/schedules.yaml`` (default UTC), so a schedule means
the same on every server; ``build_deployments(timezone=...)`` overrides the zone.
"""

from __future__ import annotations

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
    for key in ("nightly_optimisation", "weekly_what_if"):
        try:
            CronSchedule(cron=document[key], timezone=document["timezone"])
        except (ValidationError, ValueError, TypeError) as error:
            field = error.errors()[0]["loc"][0] if isinstance(error, ValidationError) else "cron"
            if field == "timezone":
                raise InputError(f"{path}: timezone {excerpt(document['timezone'])} is not an IANA time zone "
                                 f"(e.g. UTC, Europe/London)") from None
            raise InputError(f"{path}: {key} {excerpt(document[key])} is not a cron expression (five fields: "
                             f"minute hour day-of-month month day-of-week)") from None
    return document


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
