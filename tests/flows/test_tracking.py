"""The campaign's MLflow record as a reader sees it: run names, description, the recommendation table, the link in
the Prefect artifact, and the portable store lock."""

import json
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from flows.reporting import mlflow_run_url, recommendation_markdown
from flows.tracking import NOTE_TAG, RECOMMENDATION_TABLE, open_client, run_name

WHEN = datetime(2026, 12, 1, 19, 3, 5, tzinfo=timezone.utc)


def test_run_names_say_campaign_seed_and_time_and_differ_across_seeds():
    names = {run_name("default", seed, WHEN) for seed in (1, 2, 42)}
    assert names == {"default-seed1-20261201T190305", "default-seed2-20261201T190305",
                     "default-seed42-20261201T190305"}
    assert run_name("default", 42, WHEN) != run_name("default", 42, WHEN.replace(second=6))  # two in a minute


def test_link_uses_the_tracking_servers_host_and_port_and_names_the_run():
    url = mlflow_run_url("http://10.1.2.3:5051", "7", "abc123")
    assert url == "http://10.1.2.3:5051/#/experiments/7/runs/abc123?workflowType=machine_learning"  # classic view
    local = mlflow_run_url("sqlite:///mlruns/mlflow.db", "7", "abc123")
    assert local.startswith("`snhc ui` then http://127.0.0.1:5000/") and "/experiments/7/runs/abc123?" in local
    # another local store: the command that serves it (plain `snhc ui` opens the default store, without the run)
    other = mlflow_run_url("sqlite:///my/newdir/x.db", "7", "abc123")
    assert other.startswith("`snhc ui --tracking-uri sqlite:///my/newdir/x.db` then http://127.0.0.1:5000/")
    # a server behind credentials: a link the browser can open (it asks for them), with no secret in it
    guarded = mlflow_run_url("https://alice:pw@mlflow.lab:5099/", "7", "abc123")
    assert guarded == "https://mlflow.lab:5099/#/experiments/7/runs/abc123?workflowType=machine_learning"
    # a store's path with " then " in it stays whole in the Prefect artifact's command
    odd = mlflow_run_url("sqlite:////data/before then after/x.db", "7", "abc123")
    assert "run `snhc ui --tracking-uri 'sqlite:////data/before then after/x.db'`, then [http://127.0.0.1:5000/" in \
        recommendation_markdown("default", {}, {}, (400.0, 3.0), "abc123", "snhc-optimisation", run_url=odd)
    markdown = recommendation_markdown("default", {"milling_time_h": 12.345678}, {"particle_expansion_pct": 251.2},
                                       (400.0, 3.0), "abc123", "snhc-optimisation",
                                       run_url=mlflow_run_url("http://10.1.2.3:5051", "7", "abc123"))
    assert f"[{url}]({url})" in markdown
    assert "| milling time | 12.35 | h |" in markdown  # rounded for reading, with its unit
    assert "±" not in markdown  # the GP's sd is not shown as a model error bar
    # a metric that follows from the recipe (a front's milling time) has no interval to show, only a value
    banded = recommendation_markdown("pareto", {}, {"milling_time_h": 4.517, "particle_expansion_pct": 251.2},
                                     (float("nan"), float("nan")), "abc123", "snhc-optimisation",
                                     intervals={"milling_time_h": [4.517, 4.517],
                                                "particle_expansion_pct": [240.0, 262.0]})
    assert "| milling time | 4.517 | – |" in banded and "| particle expansion | 251.2 | 240–262 |" in banded


def test_two_clients_open_a_new_store_at_once(tmp_path):
    uri = f"sqlite:///{tmp_path}/new/mlflow.db"
    errors = []

    def open_it():
        try:
            open_client(uri).search_experiments()
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == [] and (tmp_path / "new" / "mlflow.db").exists()


def test_a_sqlite_store_keeps_what_a_process_logged_before_exiting_without_teardown(tmp_path):
    """A run logged by a process that ends with ``os._exit`` - as ``snhc`` does, with MLflow's connections still
    open - is all there for the next reader."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    script = (
        "import os\n"
        "from flows.tracking import open_client\n"
        f"client = open_client({uri!r})\n"
        "run = client.create_run(client.create_experiment('e'), tags={'kept': 'yes'})\n"
        "client.log_metric(run.info.run_id, 'capacity_mAh_per_g', 342.5)\n"
        "client.set_terminated(run.info.run_id, 'FINISHED')\n"
        "print(run.info.run_id, flush=True)\n"
        "os._exit(0)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    run = open_client(uri).get_run(done.stdout.split()[-1])
    assert run.data.metrics == {"capacity_mAh_per_g": 342.5}
    assert run.data.tags["kept"] == "yes" and run.info.status == "FINISHED"


def test_campaign_run_reads_at_a_glance(prefect_local, params, tmp_path):
    """Name with campaign and seed, the config's description as the run description, one recommendation table with
    units, and the recommended recipe's objective and headline predictions as metrics, by which the MLflow UI
    sorts and compares runs (they had been in the table alone: two campaigns' recommendations could not be set
    side by side)."""
    from flows.optimise import optimise_anode

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    overrides = {"optimiser": {"n_calls": 4, "n_initial_points": 2, "batch_size": 2, "seed": 7},
                 "physics_check": {"top_k": 0}, "tracking": {"tracking_uri": uri, "experiment_name": "glance"},
                 "description": "a short campaign for the MLflow view"}
    summary = optimise_anode(overrides=overrides)
    client = MlflowClient(uri)
    run = client.get_run(summary["run_id"])
    assert run.info.run_name.startswith("default-seed7-")
    description = run.data.tags[NOTE_TAG]
    assert description.startswith("a short campaign for the MLflow view\n")
    # four asked for by the optimiser, two from the dense search (the model's optimum and its cheapest equivalent)
    assert "| recipe | milling time |" in description
    assert "**Recommendation after 6 evaluations** (4 searched, 2 from the dense search)" in description
    recommended = json.loads(Path(client.download_artifacts(summary["run_id"], "recommended_recipe.json",
                                                            str(tmp_path / "r"))).read_text())
    assert run.data.metrics["recommended.objective"] == pytest.approx(recommended["objective"])
    capacity = run.data.metrics["recommended.objective_capacity_mAh_per_g"]
    assert 0 < capacity and run.data.metrics["recommended.particle_expansion_pct"] > 0
    assert capacity == pytest.approx(recommended["metrics"]["objective_capacity_mAh_per_g"])
    # each headline prediction's interval and flag beside it, as the child runs carry theirs (they had been bare)
    for name in ("objective_capacity_mAh_per_g", "particle_expansion_pct"):
        low, high = (run.data.metrics[f"recommended.{name}_interval_90_{end}"] for end in ("low", "high"))
        assert [low, high] == pytest.approx(recommended["interval_90"][name]) and low <= run.data.metrics[
            f"recommended.{name}"] <= high
        assert run.data.metrics[f"recommended.{name}_extrapolated"] == float(recommended["extrapolated"][name])
    document = json.loads(Path(client.download_artifacts(summary["run_id"], RECOMMENDATION_TABLE,
                                                         str(tmp_path))).read_text())
    table = pd.DataFrame(document["data"], columns=document["columns"])  # MLflow's table format
    rows = {(r["what"], r["quantity"]): r for _, r in table.iterrows()}
    assert rows[("recipe", "milling time")]["unit"] == "h"
    assert rows[("predicted", "particle expansion")]["unit"] == "%"
    shown = float(rows[("recipe", "sn mass fraction")]["value"])
    assert shown == pytest.approx(summary["recipe"]["sn_mass_fraction"], rel=1e-3)
    assert run.data.params["optimiser.seed"] == "7"  # params stay exact
    # the run page warns as the console does: every sentence of the recommendation, and each extrapolated value
    from flows.metrics import words

    record = json.loads(Path(client.download_artifacts(summary["run_id"], "recommended_recipe.json",
                                                       str(tmp_path))).read_text())
    sentences = [s for s in (record["fidelity"], record["rule"], *record["search_bounds"]) if s]
    assert sentences and all(f"- {s}" in description for s in sentences)
    assert set(sentences) <= set(table.loc[table["what"] == "note", "value"])
    flags = {words(name): flagged for name, flagged in record["extrapolated"].items() if isinstance(flagged, bool)}
    predicted = table[table["what"] == "predicted"]
    assert len(predicted) > 0
    for quantity, flag in zip(predicted["quantity"], predicted["flag"]):
        assert flag == ("extrapolated" if flags[quantity] else "")
    # every child run carries the model's 90 % interval beside its metrics, around its value
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{summary['run_id']}'")
    assert len(children) == 6
    assert str(record["evaluation"]) in {child.data.tags["evaluation"] for child in children}
    for child in children:
        metrics = child.data.metrics
        for name in ("objective", "capacity_at_4.2_A_per_g_mAh_per_g", "particle_expansion_pct"):
            low, high = metrics[f"{name}_interval_90_low"], metrics[f"{name}_interval_90_high"]
            assert low <= metrics[name] <= high and high - low > 0
        # and each banded metric's extrapolation flag (a child run had carried none), as the recommendation's
        banded = {name[: -len("_interval_90_low")] for name in metrics if name.endswith("_interval_90_low")}
        assert banded and all(metrics[f"{name}_extrapolated"] in (0.0, 1.0) for name in banded)
        if child.data.tags["evaluation"] == str(record["evaluation"]):
            shared = [name for name, flag in record["extrapolated"].items()
                      if name in banded and isinstance(flag, bool)]
            assert len(shared) >= 3, shared
            assert {name: bool(metrics[f"{name}_extrapolated"]) for name in shared} == {
                name: record["extrapolated"][name] for name in shared}


class _Campaign:
    """The little a progress line reads from a campaign."""

    class config:  # noqa: N801
        name = "default"
        multi_objective = False

        class optimiser:  # noqa: N801
            n_calls = 8

    def __init__(self, done):
        self.done = done

    def model_evaluations(self):
        return self.done

    def failed(self):
        return 1

    def best_modelled_objective(self):
        return 321.04


def test_batch_progress_reaches_the_console_and_the_prefect_run_log(prefect_local, capsys):
    import logging

    from prefect import flow

    from flows.reporting import BatchProgress

    campaign = _Campaign(4)
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    run_log = logging.getLogger("prefect.flow_runs")  # where get_run_logger() writes (and the Prefect UI reads)

    @flow(name="progress-probe")
    def probe(quiet: bool):
        BatchProgress(campaign, quiet)(0)

    run_log.addHandler(handler)
    try:
        probe(quiet=True)
    finally:
        run_log.removeHandler(handler)
    assert "default batch 1" not in capsys.readouterr().out  # quiet: nothing on the console ...
    assert "default batch 1: 4/8 evaluations, 1 failed, best objective 321.0 mAh/g" in seen  # ... but in the run log
    BatchProgress(campaign)(0)  # outside a flow run: no logger, a plain line (stderr is not a terminal here)
    shown = capsys.readouterr()
    assert shown.err == "default batch 1: 4/8 evaluations, 1 failed, best objective 321.0 mAh/g\n"
    assert shown.out == ""  # stdout carries results alone


def test_a_note_the_console_shows_is_not_shown_again_by_prefects_console_handler(prefect_local, capsys):
    """Every note, batch line and physics-check line had appeared twice on a terminal: on the console and again,
    timestamped, from Prefect's console handler. The run log (the Prefect UI) still gets each; Prefect's console
    handler leaves out those the console printed, and keeps a quiet one (the console did not print it). It also
    leaves out the engine's crash report of a campaign stopped by Ctrl-C (two lines before the command's own)."""
    import logging

    from prefect import flow

    from flows.reporting import ON_CONSOLE, say

    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record)
    run_log = logging.getLogger("prefect.flow_runs")

    @flow(name="note-probe")
    def probe():
        say("recommendation: shown once")
        say("a quiet note", quiet=True)

    run_log.addHandler(handler)
    try:
        probe()
    finally:
        run_log.removeHandler(handler)
    out = capsys.readouterr().out
    assert out.count("recommendation: shown once") == 1 and "a quiet note" not in out
    records = {r.getMessage(): r for r in seen}
    shown, quiet = records["recommendation: shown once"], records["a quiet note"]
    assert getattr(shown, ON_CONSOLE) and not getattr(quiet, ON_CONSOLE)
    consoles = [h for h in logging.getLogger().handlers if type(h).__name__ == "PrefectConsoleHandler"]
    assert consoles and all(not h.filter(shown) and h.filter(quiet) for h in consoles)
    # the engine's report of a campaign stopped by Ctrl-C: the command says it itself, with how to resume
    crashed = logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, "Crash detected! Execution was "
                                "interrupted by an unexpected exception: CampaignInterrupted: stopped by SIGINT", (), None)
    failed = logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, "Flow run failed: ValueError", (), None)
    assert all(not h.filter(crashed) and h.filter(failed) for h in consoles)


def test_a_tag_beyond_mlflows_length_is_cut_at_a_line_and_says_so():
    """MLflow cuts a tag over 8000 characters itself, mid-sentence, with a console warning (a what-if study's
    description with its notes reached 8 324); the tracker cuts it at a line, within the limit, and says so."""
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    from flows.tracking import TAG_CUT, bounded_tag

    short = "a description\n- a note"
    assert bounded_tag(short) == short
    long = "\n".join(f"- note {i}: " + "x" * 70 for i in range(200))
    cut = bounded_tag(long)
    assert len(cut) <= MAX_TAG_VAL_LENGTH and cut.endswith(TAG_CUT)
    assert long.startswith(cut[: -len(TAG_CUT)]) and cut[: -len(TAG_CUT)].endswith("x")  # whole lines only


def test_a_later_recommendation_leaves_no_stale_metric_of_an_earlier_one(tmp_path):
    """MLflow shows a metric's latest value: a resumed campaign whose new recommendation lacks a metric the earlier
    one logged (a measured lab row, which measured only its score) had shown the earlier recipe's value beside the
    new one's. Such a metric is logged as NaN; a multi-objective campaign logs no scalar objective, and a recipe
    field (a milling-time objective) stays a tag only."""
    import math

    from flows.campaign import Campaign
    from flows.config import load_config
    from flows.evaluation import LAB, Evaluation
    from flows.recommendation import Recommendation
    from flows.store import store_for
    from flows.tracking import CampaignRecorder
    from surrogate.recipe import complete
    from surrogate.status import Status

    uri = f"sqlite:///{tmp_path}/m.db"
    config = load_config(None, {"tracking": {"tracking_uri": uri, "experiment_name": "stale"}})
    recipe = complete({"sn_mass_fraction": 0.65, "milling_time_h": 20.0, "milling_speed_rpm": 450.0,
                       "ball_to_powder_ratio": 10.0})
    predicted = Evaluation(recipe, Status.FINISHED, 340.0, {"objective": 340.0, "objective_capacity_mAh_per_g": 341.0,
                                                            "particle_expansion_pct": 250.0})
    measured = Evaluation(recipe | {"milling_time_h": 12.0}, Status.FINISHED, 360.0, {"objective": 360.0},
                          source=LAB)
    campaign = Campaign.new(config)
    campaign.add_batch([[0.65, 20.0, 450.0, 10.0], [0.65, 12.0, 450.0, 10.0]], [predicted, measured])
    recorder = CampaignRecorder(campaign, store_for(config.tracking))
    with recorder.run() as run_id:
        recorder.log_recommendation(Recommendation(0, predicted, 339.0, 1.0, ""), {})
        recorder.log_recommendation(Recommendation(1, measured, float("nan"), float("nan"), ""), {})
    metrics = MlflowClient(uri).get_run(run_id).data.metrics
    assert metrics["recommended.objective"] == 360.0
    assert math.isnan(metrics["recommended.particle_expansion_pct"])
    assert math.isnan(metrics["recommended.optimiser_surrogate_mean_objective"])
    # a multi-objective campaign: no scalar objective, and its milling-time objective is the recipe's (a tag)
    from surrogate.paths import config_dir

    pareto = load_config(config_dir() / "pareto.yaml", {"tracking": {"tracking_uri": uri}})
    front = Evaluation(recipe, Status.FINISHED, 300.0, {"capacity_mAh_per_g": 300.0, "milling_time_h": 20.0,
                                                        "particle_expansion_pct": 240.0})
    campaign = Campaign.new(pareto)
    campaign.add_batch([[0.65, 20.0, 450.0, 10.0]], [front])
    recorder = CampaignRecorder(campaign, store_for(pareto.tracking))
    names = ("capacity_mAh_per_g", "milling_time_h", "particle_expansion_pct")
    with recorder.run() as run_id:
        recorder.log_recommendation(Recommendation(0, front, float("nan"), float("nan"), "", objective_names=names),
                                    {})
    run = MlflowClient(uri).get_run(run_id).data
    assert run.metrics["recommended.capacity_mAh_per_g"] == 300.0 and "recommended.objective" not in run.metrics
    assert "recommended.milling_time_h" not in run.metrics and run.tags["recommended.milling_time_h"] == "20"
