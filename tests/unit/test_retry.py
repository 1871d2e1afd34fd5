"""The one retry rule (tasks/retry.py): flakes within a budget, never verdicts."""
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from uuid import uuid4

from hotdeploy.errors import Refusal
from tasks.retry import retrying


class _State:
    def __init__(self, error):
        self.error = error

    def result(self):
        raise self.error


def _run(seconds_ago: float, count: int = 1):
    return SimpleNamespace(id=uuid4(), start_time=datetime.now(timezone.utc) - timedelta(seconds=seconds_ago),
                           run_count=count)


def test_verdicts_and_bad_data_are_never_retried():
    may = retrying()["retry_condition_fn"]
    assert may(None, _run(0), _State(Refusal("no hosts"))) is False
    assert may(None, _run(0), _State(ValueError("garbage"))) is False
    assert may(None, _run(0), _State(ConnectionError("flake"))) is True


def test_a_silent_endpoint_is_given_up_within_the_budget():
    options = retrying(delays=(1, 4, 10), attempt_s=13, budget_s=30)
    may = options["retry_condition_fn"]
    assert options["retries"] == 3 and options["retry_delay_seconds"] == [1, 4, 10]
    assert may(None, _run(10, count=1), _State(TimeoutError())) is True     # 10 + 1 + 13 <= 30
    assert may(None, _run(21, count=2), _State(TimeoutError())) is False    # 21 + 4 + 13 > 30
