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
    interrupts.restore()
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


def test_a_signal_whose_raise_a_finaliser_swallowed_stops_at_the_next_check(monkeypatch):
    """Python ignores an exception raised while a __del__ runs; the signal must still stop the campaign, and its
    swallowed raise is not printed as "Exception ignored in ... CampaignInterrupted" with a traceback (a Ctrl-C
    landing in SQLAlchemy's registry clean-up had printed one; a helper's new-user trial). Any other exception a
    finaliser raises still reaches the hook the process had."""
    import sys

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", lambda report: unraisable.append(report.exc_type))
    previous = {s: signal.getsignal(s) for s in interrupts.EXIT_CODES}
    interrupts.install()
    try:
        class Finalised:
            def __init__(self, action):
                self.action = action

            def __del__(self):
                self.action()

        Finalised(lambda: os.kill(os.getpid(), signal.SIGINT))  # the handler's raise happens inside __del__
        assert unraisable == []
        with pytest.raises(interrupts.CampaignInterrupted) as caught:
            interrupts.check()
        assert caught.value.exit_code == 130
        interrupts.check()  # raised once, then nothing pending

        def fails():
            raise ValueError("a finaliser's own error")

        Finalised(fails)
        assert unraisable == [ValueError]
    finally:
        interrupts.restore()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert sys.unraisablehook is not interrupts._quiet_unraisable  # put back by restore()


def test_once_the_campaign_is_finished_a_signal_during_the_clean_up_is_ignored(installed):
    """Ctrl-C as the temporary server stopped, after the run was recorded, had printed a traceback from an atexit
    callback: a finished campaign's clean-up is not stopped, and nothing is left pending."""
    interrupts.finished()
    os.kill(os.getpid(), signal.SIGINT)
    interrupts.check()
    interrupts.install()  # the next campaign is stoppable again
    with pytest.raises(interrupts.CampaignInterrupted):
        os.kill(os.getpid(), signal.SIGINT)


def test_restore_puts_back_the_callers_handlers():
    """A notebook or test session that ran a campaign in-process (flows.cli.main with arguments) gets its own
    Ctrl-C handling back: after the campaign finished, a signal had been ignored for the rest of the process."""
    previous = signal.getsignal(signal.SIGINT)  # whatever the session had (an earlier in-process campaign's, say)
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the caller's own
        interrupts.install()
        interrupts.finished()
        interrupts.restore()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_resume_line_repeats_the_options_that_shaped_the_stopped_campaign():
    """The command a stopped campaign prints resumes it as it was started: its seed, batch size and budget (a resume
    without the stopped command's --seed 3 had been told its config differs in optimiser.seed), values quoted for
    the shell and a tracking URI's password masked."""
    import shlex
    from types import SimpleNamespace

    from flows.cli import _campaign_overrides, _interrupted_message, build_parser

    command = ["optimise", "--config", "configs/pareto.yaml", "--n-calls", "40", "--seed", "3", "--batch-size", "2",
               "--tracking-uri", "postgresql://u:hunter2@db.example/mlflow"]
    args = build_parser().parse_args(command)
    campaign = SimpleNamespace(run_id="abc123", evaluations=[], model_evaluations=lambda: 8,
                               config=SimpleNamespace(optimiser=SimpleNamespace(n_calls=40)))
    line = _interrupted_message(args, campaign, interrupts.CampaignInterrupted(signal.SIGINT))
    assert "hunter2" not in line and line.endswith("(the tracking URI's secret is masked here: put yours back)")
    resume = shlex.split(line.split("Resume with: snhc ")[1].split(" (the tracking URI's")[0])
    assert resume[resume.index("--resume") + 1] == "abc123"
    again = build_parser().parse_args(resume)
    shaped = {k: v for k, v in _campaign_overrides(args).items() if k != "tracking"}
    assert {k: v for k, v in _campaign_overrides(again).items() if k != "tracking"} == shaped
    assert again.config == args.config
