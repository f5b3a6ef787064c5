"""Signals (flows/interrupts.py): raised at once outside the loop, deferred to a safe point inside it."""

import os
import signal

import pytest

from flows import interrupts


@pytest.fixture
def installed():
    previous = {s: signal.getsignal(s) for s in interrupts.EXIT_CODES}
    interrupts.install()
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def test_outside_the_loop_a_signal_stops_at_once(installed):
    with pytest.raises(interrupts.CampaignInterrupted) as caught:
        os.kill(os.getpid(), signal.SIGTERM)
    assert caught.value.exit_code == 143


def test_inside_the_loop_the_batch_in_hand_finishes_first(installed):
    finished = []
    with pytest.raises(interrupts.CampaignInterrupted) as caught:
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            finished.append("batch")  # the work in hand is not cut short
            interrupts.check()
            finished.append("next batch")
    assert finished == ["batch"] and caught.value.exit_code == 130
    interrupts.check()  # nothing pending afterwards
