"""One retry rule for every task that talks to an outside system (S3, EC2,
the container engine): retry what the network can cause, within a time
budget from the task's first start; never a verdict (retrying a refusal only
delays it) nor a ValueError (bad data stays bad)."""
from __future__ import annotations

from datetime import datetime, timezone

from prefect.cache_policies import NO_CACHE

from hotdeploy.errors import Verdict

BUDGET_S = 30.0      # an endpoint that accepts and never answers fails the run within about this

_first_start: dict[str, datetime | None] = {}


def retrying(delays: tuple[float, ...] = (1, 4, 10), attempt_s: float = 13.0, budget_s: float = BUDGET_S) -> dict:
    """Task options: retries after DELAYS, each only if another attempt (up
    to ATTEMPT_S: the client's connect and read timeouts) ends within
    BUDGET_S of the task's first start."""
    def may_retry(task, task_run, state) -> bool:
        try:
            state.result()
        except (Verdict, ValueError):
            return False
        except Exception:
            # the first attempt's start (the engine may stamp each attempt anew)
            started = _first_start.setdefault(str(task_run.id), task_run.start_time)
            if len(_first_start) > 10_000:
                _first_start.clear()
            if started is None:
                return True
            elapsed = (datetime.now(timezone.utc) - started).total_seconds()
            attempt = max(0, (task_run.run_count or 1) - 1)
            delay = delays[min(attempt, len(delays) - 1)]
            return elapsed + delay + attempt_s <= budget_s
        return False
    return dict(retries=len(delays), retry_delay_seconds=list(delays), retry_condition_fn=may_retry,
                cache_policy=NO_CACHE)
