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
    from prefect.deployments import run_deployment
    from prefect.states import Cancelled
    log = get_run_logger()
    start = time.monotonic()
    # The key makes a second call for the same shard of the same run (a
    # retried or resumed parent) find the first one's run, not start another.
    run = run_deployment(sharding.deployment, parameters=_shard_parameters(sharding, hosts, run_id, shard, commit),
                         idempotency_key=f"{run_id}:{shard}", timeout=0, as_subflow=True)
    log.info("shard %s: %d host(s) as flow run %s of %s", shard, len(hosts), run.name, sharding.deployment)
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run.id)
            state = run.state.type.value if run.state else "SCHEDULED"
            if state in FINAL:
                break
            if run.start_time is None and time.monotonic() - start > START_TIMEOUT_S:
                client.set_flow_run_state(run.id, Cancelled(message="no worker took this shard"), force=True)
                why = (f"not started: no worker of the pool took shard {shard} ({sharding.deployment}) within "
                       f"{START_TIMEOUT_S:.0f} s; start one (prefect worker start --pool ...)")
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
