"""The stop request itself: checkpoints, backoff pauses cut short, signal handlers put back."""

from __future__ import annotations

import signal
import threading

import pytest
from conftest import API_KEY
from faultkit import wait_for

from reconcile.config import parse_config
from reconcile.errors import Interrupted
from reconcile.exitcodes import ExitCode
from reconcile.runtime import interrupt
from reconcile.stripe import pull as stripe_pull


@pytest.fixture(autouse=True)
def no_stop_left_behind():
    interrupt.reset()
    yield
    interrupt.reset()


@pytest.mark.parametrize("name, code", [("SIGTERM", ExitCode.TERMINATED), ("SIGINT", ExitCode.INTERRUPTED)])
def test_checkpoint_raises_only_once_a_stop_is_requested(name, code):
    interrupt.checkpoint("pull")  # nothing requested: carries on
    interrupt.request_stop(name)
    with pytest.raises(Interrupted) as caught:
        interrupt.checkpoint("repair")
    assert caught.value.exit_code == code and int(code) == {"SIGTERM": 143, "SIGINT": 130}[name]
    assert str(caught.value).startswith(f"interrupted by {name} during repair;")


def test_a_rate_limit_pause_in_progress_is_cut_short_by_a_stop(stripe_server):
    """Stripe asks to wait ten minutes; a SIGTERM must not wait with it."""
    stripe_server.inject("/v1/charges", "429_retry_after", times=None, retry_after=600)
    config = parse_config({"stripe": {"api_base": stripe_server.url}, "mongodb": {"database": "shop"}})
    client = stripe_pull.make_client(API_KEY, config.stripe)
    policy = stripe_pull.RetryPolicy(max_retries=5, max_total_seconds=3600)  # the default, interruptible sleep
    outcome: list[BaseException] = []

    def pull() -> None:
        try:
            stripe_pull.request(client, "/v1/charges", {}, policy)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=pull)
    worker.start()
    wait_for(lambda: stripe_server.faults_served == 1, what="the first 429")
    interrupt.request_stop("SIGTERM")
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert isinstance(outcome[0], Interrupted) and outcome[0].step == "pull"
    assert stripe_server.faults_served == 1  # no second attempt after the stop


def test_handlers_are_installed_inside_and_restored_after():
    before = signal.getsignal(signal.SIGTERM)
    with interrupt.handle_signals():
        assert signal.getsignal(signal.SIGTERM) is not before
        signal.raise_signal(signal.SIGTERM)  # handled: recorded, not fatal
        assert interrupt.stop_requested()
        with pytest.raises(interrupt.StopNow):
            signal.raise_signal(signal.SIGTERM)  # a second one stops at once
    assert signal.getsignal(signal.SIGTERM) is before and not interrupt.stop_requested()
