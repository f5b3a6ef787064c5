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
