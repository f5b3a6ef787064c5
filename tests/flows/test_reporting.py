"""The campaign's figures: what a reader of the MLflow run sees on their axes."""

import numpy as np

from flows.config import load_config
from flows.reporting import objective_figure
from flows.search import make_optimizer


def test_partial_dependence_axes_carry_few_plain_numbers():
    """Log-scaled recipe axes (milling time, speed, BPR) are labelled 0.5, 1, 2, 5 ..., not mathtext 2x10^2 on every
    minor tick (which overlapped on scikit-optimize's 2-inch panels and built mathtext's parser on every run)."""
    config = load_config(None)
    optimizer = make_optimizer(config)
    points = optimizer.ask(n_points=12)
    optimizer.tell(points, [float(np.sin(3 * p[0]) + np.log(p[1])) for p in points])
    figure = objective_figure(optimizer)
    figure.canvas.draw()
    log_axes = [axis for panel in figure.axes for axis in (panel.xaxis, panel.yaxis) if axis.get_scale() == "log"]
    assert log_axes, "the default search space has log-scaled dimensions"
    for axis in log_axes:
        low, high = sorted(axis.get_view_interval())
        for location, label in zip(axis.get_majorticklocs(), axis.get_majorticklabels()):
            if low <= location <= high and label.get_text():
                assert float(label.get_text()) == float(f"{location:g}")  # a mathtext label would not parse
        assert not axis.get_minorticklocs().size
    labelled = [axis for axis in log_axes if [t for t in axis.get_ticklabels() if t.get_text()]]
    assert labelled, "the outer panels label their log axes"


def test_the_partial_dependence_marks_the_recommended_recipe():
    """The red point and lines of objective.png sit at the recipe the campaign recommends, not at the best
    evaluation (the dense search's optimum, which the cheapest-equivalent rule may pass over)."""
    config = load_config(None)
    optimizer = make_optimizer(config)
    points = optimizer.ask(n_points=12)
    optimizer.tell(points, [float(np.sin(3 * p[0]) + np.log(p[1])) for p in points])
    recommended = max(points, key=lambda p: float(np.sin(3 * p[0]) + np.log(p[1])))  # the worst, for contrast
    figure = objective_figure(optimizer, recommended)
    red = [line for panel in figure.axes for line in panel.get_lines() if line.get_color() in ("r", "red")]
    assert any(np.allclose(line.get_xdata(), recommended[0]) for line in red)  # the Sn fraction's red line
    assert "recommended recipe" in figure._suptitle.get_text()


def test_a_front_that_beats_the_dense_search_is_not_said_to_be_below_it():
    from types import SimpleNamespace

    from flows.reporting import model_optimum_note

    from flows.objective import CapacityAtCycleObjective, ParticleExpansionObjective

    found = SimpleNamespace(objective=342.8)
    capacity = CapacityAtCycleObjective()
    assert "0.2 % better" in model_optimum_note(found, 343.6, added=False, first_objective=capacity, front=True)
    assert "2.5 % worse" in model_optimum_note(found, 334.2, added=False, first_objective=capacity, front=True)
    # a minimised first objective comes as the score (-value) and is shown as its own value
    expansion = ParticleExpansionObjective()
    note = model_optimum_note(SimpleNamespace(objective=-36.5), -36.9, added=False, first_objective=expansion,
                              front=True)
    assert "particle_expansion_pct" in note and ": 36.5, the campaign's best 36.9 (1.1 % worse)" in note
    # a single objective's optimiser above the dense search: said, not printed as a "regret -0.0 %"
    single = model_optimum_note(found, 342.81, added=False)
    assert "regret -" not in single and "above it: the dense search stopped short" in single
    assert "regret 0.3 %" in model_optimum_note(found, 341.8, added=False)


def test_partial_dependence_axes_name_their_quantity_and_unit():
    """Each recipe axis of objective.png reads as words with its unit ("milling time [h]", not milling_time_h), and
    each diagonal panel's value axis is the objective itself in mAh/g (it had been the optimiser's loss, -objective);
    the title stays inside the figure, and no two panels' axis labels overlap."""
    config = load_config(None)
    optimizer = make_optimizer(config)
    points = optimizer.ask(n_points=12)
    optimizer.tell(points, [float(np.sin(3 * p[0]) + np.log(p[1])) for p in points])
    figure = objective_figure(optimizer)
    labels = {axis.get_label_text() for panel in figure.axes for axis in (panel.xaxis, panel.yaxis)} - {""}
    assert {"milling time [h]", "milling speed [rpm]", "objective [mAh/g]"} <= labels, labels
    assert not any("_" in label for label in labels), labels
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    title = figure._suptitle.get_window_extent(renderer)
    assert 0 <= title.x0 and title.x1 <= figure.bbox.width
    boxes = [axis.label.get_window_extent(renderer) for panel in figure.axes for axis in (panel.xaxis, panel.yaxis)
             if axis.label.get_text()]
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]


def test_an_objective_that_is_a_recipe_field_is_printed_once(capsys):
    """A Pareto campaign's milling-time objective is the recipe's own milling time: the recommendation shows it
    once, with the recipe, not again as a metric with a zero-width interval ('9.9 [9.9-9.9]')."""
    from flows.reporting import print_recommendation

    recipe = {"sn_mass_fraction": 0.6, "milling_time_h": 9.866}
    metrics = {"capacity_mAh_per_g": 216.3, "milling_time_h": 9.866}
    print_recommendation(recipe, metrics, (float("nan"), float("nan")),
                         {"capacity_mAh_per_g": [157.2, 230.1], "milling_time_h": [9.866, 9.866]})
    out = capsys.readouterr().out
    assert out.count("milling_time_h") == 1 and "9.9 [9.9–9.9]" not in out
    assert "216.3 [157.2–230.1]" in out


def test_the_extrapolation_flag_says_which_reason_applies(capsys):
    """A recommendation flagged extrapolated says why: the fields in which its recipe is unlike the study's
    materials, or, with none, the objective's conditions (it had read "its conditions or its materials" either
    way, so the flag could not be used to judge trust)."""
    from flows.reporting import print_recommendation

    recipe, metrics = {"sn_mass_fraction": 0.6, "milling_time_h": 22.0}, {"capacity_mAh_per_g": 341.2}
    flags = {"capacity_mAh_per_g": True}
    print_recommendation(recipe, metrics, (float("nan"), float("nan")), {}, flags,
                         {"milling_time_h": "22 h, outside the calibration's milled materials' 10 h"})
    out = " ".join(capsys.readouterr().out.split())
    assert "the recipe is unlike any of the study's materials in milling_time_h" in out and "current" not in out
    print_recommendation(recipe, metrics, (float("nan"), float("nan")), {}, flags, {})
    conditions = " ".join(capsys.readouterr().out.split())
    assert "the objective's current, cycle count or temperature lies beyond" in conditions
    print_recommendation(recipe, metrics, (float("nan"), float("nan")), {}, flags,
                         {"milling_time_h": "22 h"}, conditions_beyond=True)  # both reasons at once: both said
    both = " ".join(capsys.readouterr().out.split())
    assert "materials in milling_time_h" in both and "; and the objective's current" in both
    print_recommendation(recipe, metrics, (float("nan"), float("nan")), {}, {"capacity_mAh_per_g": False}, {})
    assert "beyond the study's data" not in capsys.readouterr().out
