"""A deploy suspended for an approval: what its run needs to go on when it
resumes in a new process, and what the sweep does with it once its deadline
passed. Kept by Prefect beside the environment's lock (a variable named by
variable_name); no I/O here."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from hotdeploy.errors import KnownFailure

SWEEP_GRACE_S = 900         # the lock outlives the deadline by this: the cron sweep (15 min) answers by then

RESUME, RELEASE, WAIT = "resume", "release", "wait"


@dataclass(frozen=True)
class Awaiting:
    """RUN_ID deploys APP VERSION on ENVIRONMENT (a block name) and waits for
    an approval (input KEY) until DEADLINE (UTC, ISO 8601) with the lock's
    lease LEASE_ID kept; CANARY: the canary hosts' outcomes (installed, not
    permanent)."""
    run_id: str
    app: str
    version: str
    environment: str
    lease_id: str
    key: str
    deadline: str
    timeout_s: float
    canary: tuple[dict, ...]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | dict) -> "Awaiting":
        data = json.loads(text) if isinstance(text, str) else dict(text)
        return cls(**{**data, "canary": tuple(data.get("canary", ()))})

    def expired(self, now: datetime) -> bool:
        return now >= datetime.fromisoformat(self.deadline)

    def line(self) -> str:
        return (f"run {self.run_id} waits for an approval of {self.app} {self.version} until {self.deadline} "
                f"(canary: {', '.join(h['host'] for h in self.canary)})")


class CanaryGone(KnownFailure, RuntimeError):
    pass


def variable_name(environment: str) -> str:
    return f"hotdeploy-awaiting-{environment}"


def deadline(now: datetime, seconds: float) -> str:
    return (now + timedelta(seconds=seconds)).isoformat(timespec="seconds")


def kept_lease_seconds(left_s: float, longest_s: float) -> float:
    """How long a suspended run keeps the lock: the wait left, and the
    sweep's grace to answer it, within Prefect's longest lease."""
    return max(60.0, min(left_s + SWEEP_GRACE_S, longest_s))


def sweep_action(awaiting: Awaiting, run_state: str | None, now: datetime) -> str:
    """What the sweep does with a suspended deploy: RESUME it with a refusal
    (its deadline passed: the run takes its canary back), RELEASE the lock it
    kept (the run ended some other way, or is gone: it will never resume), or
    WAIT. RUN_STATE: the run's state type (SUSPENDED is PAUSED), None if gone."""
    if run_state in (None, "COMPLETED", "FAILED", "CANCELLED", "CRASHED"):
        return RELEASE
    if run_state == "PAUSED" and awaiting.expired(now):
        return RESUME
    return WAIT


def canary_first(names: list[str], awaiting: Awaiting) -> list[int]:
    """The order a resumed run takes the hosts NAMES in: its canary first, as
    before the suspension. Raises CanaryGone naming a canary host EC2 no
    longer lists."""
    canary = [h["host"] for h in awaiting.canary]
    gone = [c for c in canary if c not in names]
    if gone:
        raise CanaryGone(f"the canary host(s) {', '.join(gone)} of the suspended run are no longer listed in the "
                         f"environment: they keep {awaiting.version} installed but not permanent (a restart boots "
                         "the release before it); deploy again or roll back")
    return [names.index(c) for c in canary] + [i for i, n in enumerate(names) if n not in canary]
