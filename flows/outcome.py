"""How a flow ends for a reason it knows (a refusal, a failed test, a host
that did not end where it should, an outside system that did not answer;
hotdeploy/errors.py): the run's final state carries the cause
as one line, the log says it once, without a traceback (nothing in our code
broke). Calling the flow from Python still raises the same exception.
Anything else is a bug and keeps Prefect's traceback."""
from __future__ import annotations

import functools
import logging

from prefect import get_run_logger
from prefect.states import Failed

from hotdeploy.errors import KnownFailure, Outage, Refusal, Verdict


def cause(e: BaseException) -> str:
    """One line: what a CI log or the UI's run list shows."""
    if getattr(e, "cause", None):       # a failure that names its own one line (failing tests)
        return e.cause
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def explained(fn):
    """Decorate a flow function (under @flow): a known refusal or failure
    ends the run Failed with the cause as its message."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Refusal as e:
            error, line = e, f"refused: {cause(e)}"
        except (KnownFailure, Outage) as e:
            error, line = e, cause(e)
        get_run_logger().error("%s", line)
        return Failed(message=line, data=error)
    return run


class _KnownEndsWithoutTraceback(logging.Filter):
    """A run started by a worker ends in a process of its own, whose engine
    raises the Failed state's exception once more at exit and logs it to the
    run as "Engine execution exited with unexpected exception" with its
    traceback. For a known end the run has said its one line already: that
    record is dropped (a bug of ours keeps it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, (Verdict, Outage)) and str(record.msg).startswith("Engine execution exited"))


logging.getLogger("prefect.flow_runs").addFilter(_KnownEndsWithoutTraceback())
