"""One deploy per environment at a time, on Prefect's own machinery: a
global concurrency limit `hotdeploy-env-<name>` of 1, taken as a lease that
the holder renews (a killed holder's slot is freed once its lease runs out).
A run suspended for an approval keeps its lease until the approval's
deadline, and holds it again when it resumes: no other deploy comes between
its canary and the rest of its waves.

Everything that touches an environment's hosts or its security group takes
it: hot_deploy, rollback, provision, rehearsal, status and the sweep. A flow
called inside another that holds the lock (rehearsal -> hot_deploy) does not
take it again.
"""
from __future__ import annotations

import contextvars
import logging
import threading
import time
from contextlib import contextmanager, nullcontext
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from hotdeploy.errors import Refusal

LEASE_SECONDS = 60          # renewed by the holder; a killed holder frees it ~LEASE + 15 s later
MAX_LEASE_SECONDS = 86400   # Prefect's longest lease: what a suspended run can keep
# (environment, the flow run holding its lock, its lease), in this run and the flows it calls
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
    with prefect_client() as client:
        try:
            return client.read_global_concurrency_limit_by_name(name).active_slots
        except ObjectNotFound:
            try:
                client.upsert_global_concurrency_limit_by_name(name, 1)
            except Exception:  # created meanwhile by a run started at the same moment
                pass
            return client.read_global_concurrency_limit_by_name(name).active_slots


def prefect_client():
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
    return {run for _, run, _ in _held.get()}


def lock_is_held(environment: str) -> bool:
    """Whether a run holds ENVIRONMENT's lock now (asked of Prefect)."""
    return _active_slots(environment) > 0


def _run_id() -> str:
    from prefect.context import get_run_context
    ctx = get_run_context()
    return str(ctx.flow_run.id) if getattr(ctx, "flow_run", None) else "local"


class _Lease:
    """The slot a run holds: renewed in a thread of its own every
    LEASE_SECONDS / 3 until released, or until it is kept for a run that
    suspends (the lease then outlives its process, see keep_lock)."""

    def __init__(self, environment: str, lease_id: UUID):
        self.environment, self.id = environment, lease_id
        self.kept = False
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name=f"hotdeploy-lock-{environment}", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        client = None       # made at the first renewal: most runs end before it
        try:
            while not self._stop.wait(LEASE_SECONDS / 3):
                try:
                    client = client or get_client(sync_client=True).__enter__()
                    client.renew_concurrency_lease(self.id, LEASE_SECONDS)
                except Exception as e:  # said loudly; the next renewal may still come in time
                    logging.getLogger("hotdeploy.lock").error(
                        "the deploy lock of environment %s could not be renewed (%s): if it stays so, it frees "
                        "itself %d s after the last renewal", self.environment, e, LEASE_SECONDS)
        finally:
            if client is not None:
                client.__exit__(None, None, None)

    def stop(self) -> None:
        self._stop.set()

    def keep(self, seconds: float) -> None:
        self.stop()
        self._renewer.join()
        with prefect_client() as client:
            client.renew_concurrency_lease(self.id, seconds)
        self.kept = True

    def release(self) -> None:
        self.stop()
        if not self.kept:
            with prefect_client() as client:     # the flow's own client: a new one costs a run's end ~0.2 s
                client.release_concurrency_slots_with_lease(self.id)


def _acquire(environment: str, timeout_seconds: float) -> UUID | None:
    """A lease on ENVIRONMENT's slot, asked every second at most until
    TIMEOUT_SECONDS passed (None then)."""
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.exceptions import PrefectHTTPStatusError
    run = _run_id()
    holder = ConcurrencyLeaseHolder(type="flow_run", id=run) if run != "local" else None
    deadline = time.monotonic() + timeout_seconds
    with prefect_client() as client, _without_client_retries():
        while True:
            try:
                answer = client.increment_concurrency_slots_with_lease(
                    [lock_name(environment)], 1, "concurrency", LEASE_SECONDS, holder).json()
                if not answer.get("limits"):
                    raise RuntimeError(f"the deploy lock {lock_name(environment)} does not exist (deleted?)")
                return UUID(answer["lease_id"])
            except PrefectHTTPStatusError as e:
                if e.response.status_code not in (423, 429, 503):
                    raise
                busy = e.response.status_code == 423
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(1.0 if busy else 0.1, left))


_NO_RETRIES: dict[int, tuple] = {}


def _without_client_retries():
    """Prefect's settings with the client's own retries off, made once per
    process (a copy costs ~20 ms): a sqlite server still writing the last
    run's events answers the lock's request 503 ("database is locked"), and
    the client would wait 2 s before asking again; _acquire asks again
    within 0.1 s."""
    from prefect.context import SettingsContext
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES
    ctx = SettingsContext.get()
    kept = _NO_RETRIES.get(id(ctx.settings))
    if kept is None or kept[0] is not ctx.settings:     # the original kept too: its id is not reused
        kept = _NO_RETRIES[id(ctx.settings)] = (ctx.settings, ctx.settings.copy_with_update(
            updates={PREFECT_CLIENT_MAX_RETRIES: 0}))
    return SettingsContext(profile=ctx.profile, settings=kept[1])


def _adopt(environment: str, lease_id: str) -> UUID | None:
    """The lease a suspended run kept, taken up again by the same run (None
    if it has expired meanwhile)."""
    from prefect.exceptions import ObjectNotFound as Gone, PrefectHTTPStatusError
    try:
        with prefect_client() as client:
            client.renew_concurrency_lease(UUID(lease_id), LEASE_SECONDS)
        return UUID(lease_id)
    except (Gone, PrefectHTTPStatusError):
        return None


@contextmanager
def environment_lock(environment: str, timeout_seconds: float, kept_lease: str | None = None):
    """Hold ENVIRONMENT's deploy lock for the block (as: the seconds it
    waited); waits up to TIMEOUT_SECONDS for another run to finish, then
    fails saying so. KEPT_LEASE: the lease this run kept when it suspended
    (an approval), held again if it is still alive."""
    if any(e == environment for e, _, _ in _held.get()):
        yield 0.0
        return
    log = get_run_logger()
    name = lock_name(environment)
    start = time.monotonic()
    lease_id = _adopt(environment, kept_lease) if kept_lease else None
    if kept_lease and lease_id is None:
        log.warning("the deploy lock this run kept while it was suspended has expired: taking it again")
    if lease_id is None:
        if _active_slots(environment):
            log.info("waiting for the deploy lock of environment %s: another run holds it (up to %g s; lock %s)",
                     environment, timeout_seconds, name)
        lease_id = _acquire(environment, timeout_seconds)
    if lease_id is None:
        raise EnvironmentBusy(
            f"another deploy holds environment {environment} (lock {name}) and did not finish within "
            f"{timeout_seconds:g} s; nothing was done. " + _who_holds(environment, name))
    lease = _Lease(environment, lease_id)
    try:
        waited = time.monotonic() - start
        log.info("holding the deploy lock of environment %s (waited %.1f s)", environment, waited)
        token = _held.set(_held.get() + ((environment, _run_id(), lease),))
        try:
            yield waited
        finally:
            _held.reset(token)
    finally:
        lease.release()


def _who_holds(environment: str, name: str) -> str:
    from .awaiting import read_awaiting     # it reads through this module's client
    awaiting = read_awaiting(environment)
    if awaiting:
        return f"A deploy suspended for an approval holds it: {awaiting.line()}; answer it on that run's page"
    return f"If no run is active, free it with `prefect gcl update {name} --active-slots 0`"


def keep_lock(environment: str, seconds: float) -> str:
    """Keep ENVIRONMENT's lock, held by this run, for SECONDS after the run's
    process ends (a run suspended for an approval); the lease's id, for the
    run to hold it again when it resumes (environment_lock's KEPT_LEASE)."""
    lease = next(lease for e, _, lease in _held.get() if e == environment)
    lease.keep(seconds)
    return str(lease.id)


def release_kept_lock(lease_id: str) -> None:
    """Free a lock kept for a suspended run that will not resume (the sweep)."""
    with prefect_client() as client:
        client.release_concurrency_slots_with_lease(UUID(lease_id))
