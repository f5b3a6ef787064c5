"""The campaign object (flows/campaign.py) and the state stores (flows/store.py): save, load, resume."""

import json
import re
from pathlib import Path

import pytest

from flows.campaign import Campaign, hand_over, take_over
from flows.config import ConfigError, load_config
from flows.evaluation import LAB, Evaluation
from flows.observations import LabData
from flows.store import FolderStateStore, MlflowStateStore
from surrogate.status import Status

RECIPE = {"sn_mass_fraction": 0.6, "milling_time_h": 8.0, "milling_speed_rpm": 400.0, "ball_to_powder_ratio": 20.0}


# configs/*.yaml that are not campaign configs
NOT_CAMPAIGNS = {"materials.yaml", "model_parameters.yaml", "physics_parameters.yaml", "schedules.yaml", "team.yaml",
                 "uncertainty.yaml"}


def evaluation(objective, status=Status.FINISHED, source="model", **recipe):
    return Evaluation(RECIPE | recipe, status, objective, {"objective": objective}, "" if status else "x", source)


def filled_campaign():
    campaign = Campaign.new(load_config())
    campaign.add_batch([[0.6, 8.0, 400.0, 20.0], [0.5, 8.0, 400.0, 20.0]],
                       [evaluation(300.0), evaluation(float("nan"), Status.FAILED, sn_mass_fraction=0.5)])
    campaign.add_batch([[0.7, 8.0, 400.0, 20.0]], [evaluation(320.0, sn_mass_fraction=0.7)])
    return campaign


def test_batches_are_numbered_and_the_best_is_the_best_finished_one():
    campaign = filled_campaign()
    assert campaign.batches == [0, 0, 1] and campaign.next_batch() == 2
    assert campaign.best_index() == 2 and campaign.best_objective() == 320.0
    assert campaign.failed() == 1 and campaign.model_evaluations() == 3
    table = campaign.table()
    assert list(table["status"]) == ["FINISHED", "FAILED", "FINISHED"]


def test_the_document_is_plain_json_and_rebuilds_the_same_campaign():
    campaign = filled_campaign()
    document = json.loads(json.dumps(campaign.to_document()))
    again = Campaign.from_document(document, "run-1", {"optimiser": {"n_calls": 80}})
    assert again.config.optimiser.n_calls == 80 and again.run_id == "run-1" and again.saved == 3
    assert [e.recipe for e in again.evaluations] == [e.recipe for e in campaign.evaluations]
    assert again.evaluations[1].status is Status.FAILED
    assert again.points == campaign.points and again.batches == campaign.batches
    # every field of every evaluation comes back (a failed one's NaN objective as NaN)
    assert json.dumps([e.record() for e in again.evaluations]) == json.dumps([e.record() for e in campaign.evaluations])
    assert again.best_objective() == campaign.best_objective() == 320.0


def test_lab_results_are_merged_once():
    lab = LabData("lab.csv", [evaluation(310.0, source=LAB, sn_mass_fraction=0.55)], [2], [])
    campaign = Campaign.new(load_config(), lab)
    assert campaign.batches == [-1] and campaign.model_evaluations() == 0
    assert campaign.add_lab_results() == 0, "a lab row already held is not added again"


@pytest.mark.parametrize("make_store", ["folder", "mlflow"])
def test_stores_load_the_newest_complete_state_and_skip_a_truncated_one(tmp_path, make_store):
    campaign = filled_campaign()
    if make_store == "folder":
        store, run_id, experiment = FolderStateStore(tmp_path / "states"), "run-a", ""
    else:
        from flows.tracking import Tracker

        tracker = Tracker(f"sqlite:///{tmp_path}/m.db", "store-test")
        store, experiment = MlflowStateStore(tracker.client), "store-test"
        run_id = tracker.start_run("campaign")
    first = campaign.to_document()
    store.save(run_id, 0, first)
    campaign.add_batch([[0.8, 8.0, 400.0, 20.0]], [evaluation(330.0, sn_mass_fraction=0.8)])
    store.save(run_id, 1, campaign.to_document())
    assert len(store.load(run_id, experiment)["evaluations"]) == 4
    if make_store == "folder":  # a kill mid-write leaves a truncated newest file: the previous one is used
        (tmp_path / "states" / run_id / "state" / "batch-0002.json").write_text('{"version": 1, "conf')
        assert len(store.load(run_id, experiment)["evaluations"]) == 3


def test_a_run_without_saved_state_resumes_from_its_config_tag(tmp_path):
    from flows.tracking import CONFIG_TAG, Tracker

    tracker = Tracker(f"sqlite:///{tmp_path}/m.db", "tagged")
    config = load_config()
    run_id = tracker.start_run("campaign", {CONFIG_TAG: json.dumps(config.model_dump(mode="json"))})
    document = MlflowStateStore(tracker.client).load(run_id, "tagged")
    assert document["evaluations"] == [] and document["config"]["name"] == config.name
    bare = tracker.start_run("not a campaign")
    with pytest.raises(ConfigError, match="neither saved state nor a campaign config"):
        MlflowStateStore(tracker.client).load(bare, "tagged")


def test_a_folder_store_without_the_run_says_so(tmp_path):
    with pytest.raises(ConfigError, match="no saved campaign state"):
        FolderStateStore(tmp_path).load("missing")


def test_a_campaign_is_handed_over_once():
    campaign = Campaign.new(load_config())
    token = hand_over(campaign)
    assert take_over(token) is campaign
    with pytest.raises(ConfigError, match="no campaign was handed over"):
        take_over(token)


def test_a_resume_says_what_it_does_not_take_from_the_command(capsys):
    """A --config whose campaign differs from the run's saved one is named (the resumed campaign keeps its own),
    and so is a budget already spent; where it is tracked and its budget are the command's to set."""
    from flows.campaign import Campaign
    from flows.cli import _note_what_a_resume_keeps
    from flows.config import load_config

    saved = Campaign.new(load_config())
    _note_what_a_resume_keeps(saved, load_config("configs/pareto.yaml"))
    err = capsys.readouterr().err
    assert "--config differs from the resumed run's saved config in" in err and "objectives" in err
    _note_what_a_resume_keeps(saved, load_config(overrides={"optimiser": {"n_calls": 80},
                                                            "tracking": {"experiment_name": "elsewhere"}}))
    assert capsys.readouterr().err == ""
    spent = Campaign.new(load_config(overrides={"optimiser": {"n_calls": 2, "n_initial_points": 2,
                                                              "batch_size": 2}}))
    spent.add_batch([[0.5, 1.0, 300.0, 10.0]] * 2, [Evaluation({}, Status.FINISHED, 1.0)] * 2)
    _note_what_a_resume_keeps(spent)
    assert "nothing more is evaluated" in capsys.readouterr().err


@pytest.mark.parametrize("config_file", sorted(p.name for p in (Path(__file__).resolve().parents[2] / "configs")
                                               .glob("*.yaml") if p.name not in NOT_CAMPAIGNS))
def test_every_shipped_campaigns_saved_state_loads_again(config_file):
    """A campaign saves its config as a dump (state, config.yaml artifact, a what-if's base); the dump must load as
    the same config. A multi-objective campaign had saved 'name_' (an alias's field name) and the default
    'objective' beside its 'objectives', so configs/pareto.yaml could be neither resumed nor what-if'd."""
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / config_file)
    campaign = Campaign.new(config)
    campaign.add_batch([[0.6, 8.0, 400.0, 20.0]], [evaluation(330.0, sn_mass_fraction=0.6)])
    document = json.loads(json.dumps(campaign.to_document()))
    again = Campaign.from_document(document, "run-1")
    assert again.config == config and len(again.evaluations) == 1


@pytest.mark.parametrize("edit, expected", [
    (lambda item: item["recipe"].update(milling_time_h=-50.0), "saved evaluation 0: milling_time_h=-50 is out of range"),
    (lambda item: item.update(objective=float("nan")), "saved evaluation 0: objective=nan for a finished evaluation"),
    (lambda item: item.update(status="PERHAPS"), "saved evaluation 0: 'PERHAPS' is not a valid Status"),
    (lambda item: item.pop("recipe"), "saved evaluation 0: missing 'recipe'"),
    (lambda item: item.update(batch="one"), "saved evaluation 0: batch='one': expected a count"),
    (lambda item: item.update(batch=-2), "saved evaluation 0: batch=-2: expected a count (or -1 for a lab row)"),
    # a point scikit-optimize cannot take had failed inside it after Prefect started, the store written
    (lambda item: item.update(point=["x", None, [], {}]), "saved evaluation 0: point=\"['x', None, [], {}]\": "
                                                          "expected its recipe's search-space point [0.6, 8.0"),
    (lambda item: item.update(point=[0.5]), "saved evaluation 0: point='[0.5]': expected its recipe's"),
    (lambda item: item.update(point=[0.9, 8.0, 400.0, 20.0]), "saved evaluation 0: point='[0.9, 8.0, 400.0, 20.0]'"),
])
def test_a_saved_state_that_snhc_did_not_write_is_one_line_before_anything_runs(edit, expected):
    """An edited state (a recipe milled -50 h, a NaN result) had run two batches of a resumed campaign before a
    traceback; it is refused as it loads, naming the evaluation and the field."""
    campaign = Campaign.new(load_config())
    campaign.add_batch([[0.6, 8.0, 400.0, 20.0]], [evaluation(330.0, sn_mass_fraction=0.6)])
    document = json.loads(json.dumps(campaign.to_document()))
    edit(document["evaluations"][0])
    with pytest.raises(ConfigError, match=re.escape(expected)) as error:
        Campaign.from_document(document, "run-1")
    assert "\n" not in str(error.value) and str(error.value).startswith("run run-1: ")


def test_a_saved_campaign_with_lab_rows_loads_again():
    """Lab rows are saved at batch -1 (not asked for by the optimiser): the state check takes them."""
    campaign = Campaign.new(load_config())
    campaign.add_batch([[0.6, 8.0, 400.0, 20.0]], [evaluation(330.0, sn_mass_fraction=0.6)])
    document = json.loads(json.dumps(campaign.to_document()))
    document["evaluations"][0]["batch"] = -1
    assert Campaign.from_document(document, "run-1").batches == [-1]


def test_a_multi_objective_campaign_saved_by_the_earlier_dump_resumes():
    """Campaigns of configs/pareto.yaml saved before objectives were dumped as written carry the default
    'objective' beside 'objectives' and each name as 'name_': they load as the config they were."""
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "pareto.yaml")
    document = json.loads(json.dumps(Campaign.new(config).to_document()))
    document["config"]["objective"] = load_config().objective.model_dump(mode="json")
    document["config"]["objectives"] = [{("name_" if k == "name" else k): v for k, v in o.items()}
                                        for o in document["config"]["objectives"]]
    assert Campaign.from_document(document, "run-1").config == config


def test_a_campaign_resumed_without_its_lab_file_keeps_the_lab_data_its_rows_taught():
    """Resumed without --observations, a campaign kept its lab rows but not the lab data the flow teaches the
    lab's parameters from: its later batches searched the study's model after batches of the lab's. The saved state
    now names the file and lines, and the rows come back as that lab data."""
    lab = LabData(Path("lab.csv"), [evaluation(310.0, source=LAB, sn_mass_fraction=0.55),
                                    evaluation(290.0, source=LAB, sn_mass_fraction=0.45)], [2, 5], [])
    campaign = Campaign.new(load_config(), lab)
    campaign.add_batch([[0.6, 8.0, 400.0, 20.0]], [evaluation(330.0, sn_mass_fraction=0.6)])
    document = json.loads(json.dumps(campaign.to_document()))
    again = Campaign.from_document(document, "run-1")
    assert again.lab is not None and again.lab.path == Path("lab.csv").absolute() and again.lab.measured_lines == [2, 5]
    assert [e.recipe for e in again.lab.measured] == [e.recipe for e in lab.measured]
    assert len(again.evaluations) == 3, "the held rows are not added twice"
    del document["lab"]  # a state saved before the file was named: the rows in their order
    older = Campaign.from_document(document, "run-1")
    assert older.lab.measured_lines == [1, 2] and "run-1" in str(older.lab.path)
    assert Campaign.from_document(json.loads(json.dumps(filled_campaign().to_document())), "run-1").lab is None


def test_rescore_replaces_only_the_predictions_another_model_scored():
    """A resumed campaign scores its saved predictions again with the model it searches now: those scored by
    another model (its lab rows changed) are replaced, keeping their source; lab rows are never re-scored, and
    given the same model nothing changes."""
    campaign = filled_campaign()
    campaign.evaluations.append(evaluation(310.0, source=LAB, sn_mass_fraction=0.55))
    campaign.points.append([0.55, 8.0, 400.0, 20.0])
    campaign.batches.append(-1)
    asked = []

    def same_model(recipes):
        asked.append(len(recipes))
        return [e for e in campaign.evaluations if e.source != LAB]

    assert campaign.rescore(same_model) == 0 and asked == [3], "the three predictions, not the lab row"

    def other_model(recipes):
        return [evaluation(280.0, sn_mass_fraction=0.6), evaluation(float("nan"), Status.FAILED,
                                                                    sn_mass_fraction=0.5),
                evaluation(300.0, sn_mass_fraction=0.7, source="whatever")]

    assert campaign.rescore(other_model) == 2
    assert [e.objective for e in campaign.evaluations if e.ok] == [280.0, 300.0, 310.0]
    assert [e.source for e in campaign.evaluations] == ["model", "model", "model", LAB]


def test_a_front_saved_before_its_unused_settings_were_refused_resumes():
    """A multi-objective campaign's saved config had always carried the single-objective tolerance, and, without a
    physics_check section, the check's default top_k 5: both are refused on a front now, and its resume had been
    refused with them."""
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "pareto.yaml")
    document = json.loads(json.dumps(Campaign.new(config).to_document()))
    document["config"]["recommendation"]["tolerance_pct"] = 0.5
    document["config"]["physics_check"]["top_k"] = 5
    assert Campaign.from_document(document, "run-1").config == config


def test_a_resume_whose_lab_file_changes_or_drops_a_held_row_is_refused():
    """A resumed campaign takes the rows it was given plus new ones: a held row the file now changes (330 -> 300) or
    leaves out had stayed in the campaign as it was, while the model was taught the file, and the saved lines no
    longer matched the saved rows. Refused; a file that adds a row is taken, its lines saved in the held order."""
    first, second = (evaluation(310.0, source=LAB, sn_mass_fraction=0.55),
                     evaluation(290.0, source=LAB, sn_mass_fraction=0.45))
    campaign = Campaign.new(load_config(), LabData(Path("lab.csv"), [first, second], [2, 3], []))
    document = json.loads(json.dumps(campaign.to_document()))
    changed = evaluation(300.0, source=LAB, sn_mass_fraction=0.55)
    with pytest.raises(ConfigError, match=r"changes \(line 2\) a lab row run run-1 holds"):
        Campaign.from_document(document, "run-1", lab=LabData(Path("lab.csv"), [changed, second], [2, 3], []))
    with pytest.raises(ConfigError, match="leaves out a lab row run run-1 holds"):
        Campaign.from_document(document, "run-1", lab=LabData(Path("lab.csv"), [second], [3], []))
    added = evaluation(280.0, source=LAB, sn_mass_fraction=0.35)
    grown = Campaign.from_document(document, "run-1",
                                   lab=LabData(Path("lab.csv"), [added, second, first], [2, 3, 4], []))
    assert grown.to_document()["lab"]["lines"] == [4, 3, 2]  # first, second, then the added row
    assert Campaign.from_document(json.loads(json.dumps(grown.to_document())), "run-1").lab.saved
