"""Scheduled deployments: a nightly optimisation and a weekly what-if set, served by ``snhc serve``.

Cron schedules need a real Prefect server (``prefect server start``); Prefect's temporary local server refuses to
schedule. The cron times and their time zone come from ``configs/schedules.yaml`` (default UTC), so a schedule means
the same on every server; ``build_deployments(timezone=...)`` overrides the zone.
"""

from __future__ import annotations

from prefect import serve
from prefect.schedules import Cron

from flows.config import read_yaml
from flows.optimise import optimise_anode
from flows.whatif import what_if
from surrogate.paths import config_dir

SCHEDULES = read_yaml(config_dir() / "schedules.yaml")
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
