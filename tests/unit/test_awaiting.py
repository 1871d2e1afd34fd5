"""A deploy suspended for an approval (pure): what it keeps, in what order a
resumed run takes its hosts, what the sweep does with it."""
import json
from datetime import datetime, timedelta, timezone

import pytest

from hotdeploy.awaiting import (RELEASE, RESUME, SWEEP_GRACE_S, WAIT, Awaiting, CanaryGone, canary_first, deadline,
                                kept_lease_seconds, sweep_action, variable_name)

NOW = datetime(2026, 12, 5, 14, 0, tzinfo=timezone.utc)


def waiting(seconds: float = 600) -> Awaiting:
    return Awaiting("run-1", "example_app", "2.0.0", "prod", "lease-1", "approval", deadline(NOW, seconds),
                    seconds, ({"host": "web-2", "address": "198.18.0.2", "result": "installed"},))


def test_what_a_suspended_run_keeps_comes_back_the_same():
    a = waiting()
    assert Awaiting.from_json(a.to_json()) == a
    assert Awaiting.from_json(json.loads(a.to_json())) == a     # as a Prefect variable gives it back
    assert a.deadline == "2026-12-05T14:10:00+00:00"
    assert "until 2026-12-05T14:10:00+00:00 (canary: web-2)" in a.line()
    assert variable_name("prod") == "hotdeploy-awaiting-prod"


def test_the_sweep_resumes_a_suspended_run_only_past_its_deadline():
    a = waiting(600)
    assert sweep_action(a, "PAUSED", NOW + timedelta(seconds=599)) == WAIT
    assert sweep_action(a, "PAUSED", NOW + timedelta(seconds=600)) == RESUME
    # resumed and starting again, or running on: its own process answers
    assert sweep_action(a, "SCHEDULED", NOW + timedelta(seconds=900)) == WAIT
    assert sweep_action(a, "RUNNING", NOW + timedelta(seconds=900)) == WAIT


@pytest.mark.parametrize("state", ["CANCELLED", "FAILED", "CRASHED", "COMPLETED", None])
def test_a_suspended_run_that_ended_otherwise_frees_its_lock(state):
    assert sweep_action(waiting(), state, NOW) == RELEASE


def test_the_lock_is_kept_past_the_deadline_for_the_sweep_within_prefects_longest_lease():
    assert kept_lease_seconds(600, 86400) == 600 + SWEEP_GRACE_S
    assert kept_lease_seconds(86000, 86400) == 86400
    assert kept_lease_seconds(-5, 86400) == SWEEP_GRACE_S - 5
    assert kept_lease_seconds(-5000, 86400) == 60      # Prefect's shortest lease


def test_a_resumed_run_takes_its_canary_first_and_refuses_if_ec2_lost_it():
    assert canary_first(["web-1", "web-2", "web-3"], waiting()) == [1, 0, 2]
    with pytest.raises(CanaryGone, match="web-2 of the suspended run are no longer listed"):
        canary_first(["web-1", "web-3"], waiting())
