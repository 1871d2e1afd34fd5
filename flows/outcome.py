"""How a flow ends for a reason it knows (a refusal, a failed test, a host
that did not end where it should): the run's final state carries the cause
as one line, the log says it once, without a traceback (nothing in our code
broke). Calling the flow from Python still raises the same exception.
Anything else is a bug and keeps Prefect's traceback."""
from __future__ import annotations

import functools

from prefect import get_run_logger
from prefect.states import Failed

from blocks import BlockMissing
from hotdeploy.artifact import ArtifactError
from hotdeploy.manifest import ManifestError
from hotdeploy.package import PackageError
from hotdeploy.params import BadParameter
from hotdeploy.rehearsal import Unrehearsed
from hotdeploy.versions import InvalidVersion
from tasks.container import ContainerFailed
from tasks.lock import EnvironmentBusy
from tasks.network import NoHosts
from tasks.store import BadPointer, UnknownVersion, VersionExists
from tasks.workspace import AppConfigError

REFUSALS = (BadParameter, InvalidVersion, BlockMissing, Unrehearsed, EnvironmentBusy, NoHosts, BadPointer,
            UnknownVersion, VersionExists, ManifestError, ArtifactError, PackageError, AppConfigError)


def known_failures() -> tuple[type, ...]:
    """Failures that are verdicts about the release or the fleet (imported
    late: the flow modules that define them import this one)."""
    from flows.fleet import FleetFailed
    from flows.rehearsal import RehearsalFailed
    from flows.release import NoUpgradePath
    return (ContainerFailed, FleetFailed, RehearsalFailed, NoUpgradePath)


def cause(e: BaseException) -> str:
    """One line: what a CI log or the UI's run list shows."""
    if isinstance(e, ContainerFailed):
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
        except REFUSALS as e:
            error, line = e, f"refused: {cause(e)}"
        except known_failures() as e:
            error, line = e, cause(e)
        get_run_logger().error("%s", line)
        return Failed(message=line, data=error)
    return run
