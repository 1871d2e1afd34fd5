"""What a run can end with, besides success (pure): the base types that say
how a flow ends and whether a task may try again.

- Verdict: about the input, the store or the fleet, not a flake of the
  network: retrying only delays it, so no task retries one.
- Refusal (a Verdict): bad input, or a state that forbids the run (a missing
  block, a busy environment, an unrehearsed version, an unsafe release). The
  run ends Failed with `refused: <cause>`, nothing having been changed.
- KnownFailure (a Verdict): the run did its work and found a failure it can
  name (a failing test, a host that did not end on the version). The run ends
  Failed with the cause.
- Outage: an outside system did not answer; tasks retry it within a budget.
Each ends the run with one line, no traceback (flows/outcome.py); anything
else is a bug of ours and keeps Prefect's traceback.
"""
from __future__ import annotations


class Verdict(Exception):
    pass


class Refusal(Verdict):
    pass


class KnownFailure(Verdict):
    pass


class Outage(Exception):
    """An outside system (S3, EC2, the container engine) did not answer:
    retried within a time budget; if it still fails, the run ends Failed with
    the cause (which system, what is left as it was), no traceback."""
