"""One deploy per environment at a time, on Prefect's own machinery: a
global concurrency limit `hotdeploy-env-<name>` of 1, taken as a lease that
the holder renews (a killed holder's slot is freed once its lease runs out).

Everything that touches an environment's hosts or its security group takes
it: hot_deploy, rollback, provision, rehearsal, status and the sweep. A flow
called inside another that holds the lock (rehearsal -> hot_deploy) does not
take it again.
"""
from __future__ import annotations

import contextvars
import time
from contextlib import ExitStack, contextmanager, nullcontext

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound

from hotdeploy.errors import Refusal

LEASE_SECONDS = 60          # renewed by the holder; a killed holder frees it ~LEASE + 15 s later
# environment -> the flow run holding its lock, in this run and the flows it calls
_held: contextvars.ContextVar[tuple] = contextvars.ContextVar("hotdeploy_env_locks", default=())


class EnvironmentBusy(Refusal, TimeoutError):
    pass


def lock_name(environment: str) -> str:
    return f"hotdeploy-env-{environment}"


def ensure_lock(environment: str) -> str:
    """The environment's limit (1 slot), created if missing."""
    _active_slots(environment)
    return lock_name(environment)


def _active_slots(environment: str) -> int:
    """How many runs hold ENVIRONMENT's limit, which is created if missing:
    one read when it exists (each call costs a run's start)."""
    name = lock_name(environment)
    with _prefect() as client:
        try:
            return client.read_global_concurrency_limit_by_name(name).active_slots
        except ObjectNotFound:
            try:
                client.upsert_global_concurrency_limit_by_name(name, 1)
            except Exception:  # created meanwhile by a run started at the same moment
                pass
            return client.read_global_concurrency_limit_by_name(name).active_slots


def _prefect():
    """The sync flow run's own client when there is one: a new client costs
    ~20 ms (an SSL context, even for an http:// API) at every run's start."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.context import FlowRunContext
    ctx = FlowRunContext.get()
    if ctx is not None and isinstance(ctx.client, SyncPrefectClient):
        return nullcontext(ctx.client)
    return get_client(sync_client=True)


def lock_holders() -> set[str]:
    """The flow runs holding a lock in this context (an outer flow's rule is
    alive while the flows it calls run)."""
    return {run for _, run in _held.get()}


def lock_is_held(environment: str) -> bool:
    """Whether a run holds ENVIRONMENT's lock now (asked of Prefect)."""
    return _active_slots(environment) > 0


def _run_id() -> str:
    from prefect.context import get_run_context
    ctx = get_run_context()
    return str(ctx.flow_run.id) if getattr(ctx, "flow_run", None) else "local"


@contextmanager
def environment_lock(environment: str, timeout_seconds: float):
    """Hold ENVIRONMENT's deploy lock for the block (as: the seconds it
    waited); waits up to TIMEOUT_SECONDS for another run to finish, then
    fails saying so."""
    if environment in dict(_held.get()):
        yield 0.0
        return
    log = get_run_logger()
    name = lock_name(environment)
    start = time.monotonic()
    if _active_slots(environment):
        log.info("waiting for the deploy lock of environment %s: another run holds it (up to %g s; lock %s)",
                 environment, timeout_seconds, name)
    held = ExitStack()
    try:  # acquiring only: a timeout inside the body is the body's own
        held.enter_context(concurrency(name, occupy=1, strict=True, lease_duration=LEASE_SECONDS,
                                       timeout_seconds=timeout_seconds))
    except TimeoutError:
        raise EnvironmentBusy(
            f"another deploy holds environment {environment} (lock {name}) and did not finish within "
            f"{timeout_seconds:g} s; nothing was done. If no run is active, free it with "
            f"`prefect gcl update {name} --active-slots 0`") from None
    with held:
        waited = time.monotonic() - start
        log.info("holding the deploy lock of environment %s (waited %.1f s)", environment, waited)
        token = _held.set(_held.get() + ((environment, _run_id()),))
        try:
            yield waited
        finally:
            _held.reset(token)
