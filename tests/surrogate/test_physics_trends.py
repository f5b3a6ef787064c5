"""Qualitative claims of the study and physical sanity of the models, beyond the fitted points."""

import numpy as np
import pytest

from surrogate.model import predict
from surrogate.recipe import Recipes


def test_composite_beats_nano_tin_at_high_current_and_hard_carbon_everywhere(predict):
    currents = (0.17, 1.7, 4.2, 8.4)
    composite = predict("Sn@HC-2-1", currents_A_per_g=currents).capacity_at_current_mAh_per_g[0]
    nano_sn = predict("nano-Sn", currents_A_per_g=currents).capacity_at_current_mAh_per_g[0]
    hard_carbon = predict("HC", currents_A_per_g=currents).capacity_at_current_mAh_per_g[0]
    assert composite[2] > nano_sn[2] and composite[3] > nano_sn[3]
    assert np.all(composite > hard_carbon)


def test_nano_tin_is_slightly_better_than_the_composite_at_low_current(predict):
    nano = predict("nano-Sn", currents_A_per_g=(0.08,)).capacity_at_current_mAh_per_g[0, 0]
    composite = predict("Sn@HC-2-1", currents_A_per_g=(0.08,)).capacity_at_current_mAh_per_g[0, 0]
    assert composite < nano < 1.2 * composite


def test_capacity_falls_monotonically_and_steeply_past_the_last_plateau(predict):
    currents = tuple(np.geomspace(0.05, 30, 25))
    curve = predict("Sn@HC-2-1", currents_A_per_g=currents).capacity_at_current_mAh_per_g[0]
    assert np.all(np.diff(curve) <= 1e-9)
    # nearly flat through the measured range, then plateaus leave the window: per decade of current, the drop from
    # 4.2 to 17 A/g is more than twice the drop from 0.17 to 4.2 A/g
    low, mid, high = predict("Sn@HC-2-1", currents_A_per_g=(0.17, 4.2, 17.0)).capacity_at_current_mAh_per_g[0]
    assert (mid - high) / np.log10(17.0 / 4.2) > 2 * (low - mid) / np.log10(4.2 / 0.17)


def test_nano_tin_fails_long_before_the_composite_at_4p2_A_per_g(predict):
    cycles = (1, 1000, 12000)
    composite = predict("Sn@HC-2-1", cycling_current_A_per_g=4.2, cycles=cycles).capacity_at_cycle_mAh_per_g[0]
    nano_sn = predict("nano-Sn", cycling_current_A_per_g=4.2, cycles=cycles).capacity_at_cycle_mAh_per_g[0]
    assert nano_sn[1] < 0.5 * nano_sn[0]
    assert composite[2] > 0.5 * composite[0]


def test_cold_cell_loses_rate_capability(predict):
    warm = predict("Sn@HC-2-1", currents_A_per_g=(4.2,), temperature_C=25.0).capacity_at_current_mAh_per_g[0, 0]
    cold = predict("Sn@HC-2-1", currents_A_per_g=(4.2,), temperature_C=0.0).capacity_at_current_mAh_per_g[0, 0]
    assert cold < warm


def test_a_batch_gives_the_same_numbers_as_one_recipe_at_a_time(params):
    rng = np.random.default_rng(7)
    batch = Recipes(rng.uniform(0, 1, 30), rng.uniform(0, 40, 30), rng.uniform(150, 600, 30), rng.uniform(5, 40, 30))
    together = predict(batch, params).scalar_metrics()
    for i in range(batch.size):
        alone = predict(batch.take([i]), params).scalar_metrics()
        for name, values in alone.items():
            assert values[0] == pytest.approx(together[name][i], rel=1e-9, abs=1e-9), name
