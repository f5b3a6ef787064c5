"""Scheduled deployments: a nightly optimisation and a weekly what-if set, served by ``snhc serve``.

Cron schedules need a real Prefect server (``prefect server start``); Prefect's temporary local server refuses to
schedule. Schedules run in the server's time zone unless ``timezone`` says otherwise.
"""

from __future__ import annotations

from prefect import serve

from flows.optimise import optimise_anode
from flows.whatif import what_if

NIGHTLY_CRON = "0 2 * * *"  # 02:00 every night
WEEKLY_WHAT_IF_CRON = "0 3 * * 1"  # 03:00 every Monday


def build_deployments(config_path: str = "configs/default.yaml", whatif_path: str = "configs/whatif",
                      overrides: dict | None = None):
    """The project's deployments, with their cron schedules and default parameters."""
    overrides = overrides or {}
    return [
        optimise_anode.to_deployment(
            name="nightly-optimisation", cron=NIGHTLY_CRON, tags=["snhc", "optimisation"],
            description="Default Sn/HC optimisation campaign, every night.",
            parameters={"config_path": config_path, "overrides": overrides}),
        what_if.to_deployment(
            name="weekly-what-if", cron=WEEKLY_WHAT_IF_CRON, tags=["snhc", "what-if"],
            description="Every what-if scenario in configs/whatif, every Monday.",
            parameters={"scenario_paths": [whatif_path], "config_path": config_path, "overrides": overrides}),
    ]


def serve_deployments(**kwargs) -> None:
    """Register the deployments with the Prefect server and run their scheduled flow runs (blocks)."""
    serve(*build_deployments(**kwargs))
