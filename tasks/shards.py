"""A shard of a big wave, run on the pool: a run of the deploy-shard
deployment, which whichever worker of the environment's pool takes it runs
(flows/shard.py), awaited here; its hosts' outcomes come back through the
store, since flow results are not readable across machines."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect_aws import S3Bucket

from .hosts import HostOutcome
from .remote import Host
from .store import read_shard_outcomes

START_TIMEOUT_S = 300.0    # no worker took a shard this long: its hosts are not started
POLL_S = 1.0
PARENT_POLL_S = 5.0        # how soon a cancelled deploy's shards are cancelled too
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass(frozen=True)
class Sharding:
    """Waves bigger than SIZE hosts run as shards: runs of DEPLOYMENT with
    PARAMETERS (app, environment, version, store_block, strategy) plus each
    shard's hosts; their outcomes are read from STORE."""
    size: int
    deployment: str
    parameters: dict
    store: S3Bucket

    @classmethod
    def of(cls, size: int, store: S3Bucket, app: str, environment: str, version: str, store_block: str,
           strategy: str) -> "Sharding | None":
        if size <= 0:
            return None
        return cls(size, f"deploy-shard/{environment}",
                   dict(app=app, environment=environment, version=version, store_block=store_block,
                        strategy=strategy), store)


def _shard_parameters(sharding: Sharding, hosts: list[Host], run_id: str, shard: str, commit: bool) -> dict:
    return {**sharding.parameters, "hosts": [asdict(h) for h in hosts], "run_id": run_id, "shard": shard,
            "commit": commit}


def outcomes_of(hosts: list[Host], rows: list[dict] | None, shard: str, why: str) -> list[HostOutcome]:
    """Each host's outcome from the rows its shard left (pure); a host
    without one failed, with WHY (what the shard's run ended as)."""
    by_host = {r["host"]: r for r in rows or []}
    fields = set(HostOutcome.__dataclass_fields__)
    outcomes = []
    for h in hosts:
        row = by_host.get(h.name)
        outcomes.append(HostOutcome(**{k: v for k, v in row.items() if k in fields}) if row else
                        HostOutcome(h.name, h.address, result="failed", detail=why))
        outcomes[-1].shard = shard
    return outcomes


@task(cache_policy=NO_CACHE, task_run_name="shard {shard}")
def run_shard(sharding: Sharding, hosts: list[Host], run_id: str, shard: str, commit: bool) -> list[HostOutcome]:
    """Run one shard on the pool and wait for it: its hosts' outcomes. Not
    retried: its hosts are (each is its own task in the shard's run)."""
    from prefect.client.orchestration import get_client
    from prefect.context import get_run_context
    from prefect.deployments import run_deployment
    from prefect.states import Cancelled, Cancelling
    log = get_run_logger()
    parent_id = get_run_context().task_run.flow_run_id
    start = time.monotonic()
    # The key makes a second call for the same shard of the same run (a
    # retried or resumed parent) find the first one's run, not start another.
    run = run_deployment(sharding.deployment, parameters=_shard_parameters(sharding, hosts, run_id, shard, commit),
                         idempotency_key=f"{run_id}:{shard}", timeout=0, as_subflow=True)
    log.info("shard %s: %d host(s) as flow run %s of %s", shard, len(hosts), run.name, sharding.deployment)
    parent_read = time.monotonic()
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run.id)
            state = run.state.type.value if run.state else "SCHEDULED"
            if state in FINAL:
                break
            # A cancelled deploy cannot stop this thread (its process waits
            # for it), so the thread looks: the shard goes the same way.
            if time.monotonic() - parent_read > PARENT_POLL_S and state != "CANCELLING":
                parent_read = time.monotonic()
                parent = client.read_flow_run(parent_id)
                if parent.state and parent.state.type.value in ("CANCELLING", "CANCELLED"):
                    log.warning("shard %s: the deploy run is %s; cancelling shard run %s", shard,
                                parent.state.name.lower(), run.name)
                    client.set_flow_run_state(run.id, Cancelling(message=f"the deploy run {parent.name} was "
                                                                         "cancelled"), force=True)
            if run.start_time is None and time.monotonic() - start > START_TIMEOUT_S:
                client.set_flow_run_state(run.id, Cancelled(message="no worker took this shard"), force=True)
                why = (f"not started: no worker of the pool took shard {shard} ({sharding.deployment}) within "
                       f"{START_TIMEOUT_S:.0f} s; start one (python -m deployments.worker --pool ...)")
                log.error("shard %s: %s", shard, why)
                return [HostOutcome(h.name, h.address, result="not started", detail=why, shard=shard) for h in hosts]
            time.sleep(POLL_S)
    rows = read_shard_outcomes(sharding.store, sharding.parameters["app"], run_id, shard)
    why = (f"shard {shard}'s run {run.name} ended {state.lower()} without this host's outcome: what it runs is "
           "not known (status reads it)")
    outcomes = outcomes_of(hosts, rows, shard, why)
    log.info("shard %s: run %s ended %s after %.1f s: %s", shard, run.name, state.lower(), time.monotonic() - start,
             ", ".join(f"{o.host} {o.result}" for o in outcomes))
    return outcomes


def cancel_shards_of(flow_run_id: str, why: str) -> list[str]:
    """Cancel every shard run of the deploy run FLOW_RUN_ID not yet ended
    or cancelling (its worker stops it, as the UI's Cancel does); their
    names. Called from the deploy's cancellation and crash hook, outside
    any task: after a crash no run_shard thread is left to do it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowFilter, FlowFilterName, FlowRunFilter,
                                                FlowRunFilterParentFlowRunId, FlowRunFilterState,
                                                FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelling
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["deploy-shard"])),
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(
                    not_any_=[StateType(s) for s in FINAL | {"CANCELLING"}]))))
        for run in runs:
            client.set_flow_run_state(run.id, Cancelling(message=why), force=True)
    return [run.name for run in runs]
