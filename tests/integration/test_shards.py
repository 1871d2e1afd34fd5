"""A big wave shared by several workers: above the environment's shard_size,
hot_deploy runs a wave as shards, each a run of deploy-shard/<environment>
that a worker of the pool takes, and reads their outcomes back from the
store. Real Prefect server and process workers, moto, namespace hosts."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from tests.conftest import ROOT
from tests.integration import fleet_checks as check
from tests.integration.conftest import process_worker_on
from tests.integration.test_locking import APP, provision

pytestmark = [pytest.mark.integration]


def shard_runs(deployment_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async def read() -> list:
        async with get_client() as client:
            return await client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(
                any_=[deployment_id])))
    return asyncio.run(read())


def test_a_wave_above_the_shard_size_runs_as_shards_that_two_workers_share(make_env, releases, tmp_path):
    from prefect import Flow

    from deployments.apply import ensure_pool
    from flows.deploy import hot_deploy
    from localfleet.fleet import GATEWAY
    env = make_env(5, canary=1, wave_size="100%", shard_size=2, deployer_cidr=f"{GATEWAY}/32")
    provision(env, releases)
    pids = [check.beam_pid(h) for h in env.fleet.hosts]
    pool = f"shards-{uuid.uuid4().hex[:6]}"
    asyncio.run(ensure_pool(pool))
    deployment = Flow.from_source(source=str(ROOT), entrypoint="flows/shard.py:deploy_shard").deploy(
        name=env.name, work_pool_name=pool, print_next_steps=False, ignore_warnings=True)
    v2 = releases.versions["v2"]
    # one run at a time each: the two shards of the second wave go to the two workers
    with process_worker_on(pool, tmp_path / "a.log", "--limit", "1"), \
            process_worker_on(pool, tmp_path / "b.log", "--limit", "1"):
        state = hot_deploy(app=APP, environment=env.name, version=v2, store_block=releases.block, return_state=True)
    assert state.is_completed(), state.message
    rows = state.result()
    assert [(r["host"], r["wave"], r["shard"], r["result"]) for r in rows] == [
        (h.name, wave, shard, "upgraded") for h, wave, shard in
        zip(env.fleet.hosts, [1, 2, 2, 2, 2], [None, "w2-s1", "w2-s1", "w2-s2", "w2-s2"])]
    assert [check.version(h) for h in env.fleet.hosts] == [v2] * 5
    assert [check.beam_pid(h) for h in env.fleet.hosts] == pids, "hot, every host: shards too"
    assert env.ssh_rules() == [], "the deploy's rule, which the shards used, was revoked"

    runs = shard_runs(deployment)
    assert sorted(r.parameters["shard"] for r in runs) == ["w2-s1", "w2-s2"]
    assert all(r.state.is_completed() and r.parent_task_run_id for r in runs), \
        "each shard is a child run of the deploy's run, shown under it in the UI"
    # Both workers may try to take a run; the one that loses logs "Aborted
    # submission", the one that runs it "submitted to infrastructure".
    took = [[f"Flow run '{r.name}' submitted to infrastructure" in (tmp_path / f"{w}.log").read_text()
             for r in runs] for w in "ab"]
    assert sorted(map(sum, took)) == [1, 1], f"each worker ran one shard: {took}"

    parent = str(state.state_details.flow_run_id)
    client, bucket = releases.client, releases.bucket
    left = json.loads(client.get_object(Bucket=bucket, Key=f"{APP}/runs/{parent}/w2-s2.json")["Body"].read())
    assert [r["host"] for r in left] == [h.name for h in env.fleet.hosts[3:]]
    record = json.loads(client.get_object(Bucket=bucket, Key=f"{APP}/environments/{env.name}.json")["Body"].read())
    assert sorted((h["host"], h["running"]) for h in record["hosts"]) == sorted((h.name, v2) for h in env.fleet.hosts)


def test_cancelling_a_sharded_deploy_cancels_its_shards_and_the_next_deploy_finishes(make_env, releases, tmp_path):
    from prefect import Flow
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    from deployments.apply import ensure_pool
    from flows.deploy import hot_deploy
    from localfleet.fleet import GATEWAY
    from tests.integration.test_run_ends import run_state, wait_for_state
    from tasks.lock import LEASE_SECONDS
    env = make_env(4, shard_size=2, deployer_cidr=f"{GATEWAY}/32", lock_timeout_seconds=LEASE_SECONDS + 45,
                   health_soak_seconds=45)     # the shards hold their hosts while the deploy is cancelled
    provision(env, releases)
    v2 = releases.versions["v2"]
    pool = f"shards-{uuid.uuid4().hex[:6]}"
    asyncio.run(ensure_pool(pool))
    shards = Flow.from_source(source=str(ROOT), entrypoint="flows/shard.py:deploy_shard").deploy(
        name=env.name, work_pool_name=pool, print_next_steps=False, ignore_warnings=True)
    Flow.from_source(source=str(ROOT), entrypoint="flows/deploy.py:hot_deploy").deploy(
        name=env.name, work_pool_name=pool, print_next_steps=False, ignore_warnings=True,
        parameters=dict(app=APP, environment=env.name, version=v2, store_block=releases.block))
    with process_worker_on(pool, tmp_path / "a.log"), process_worker_on(pool, tmp_path / "b.log"):
        run = run_deployment(f"hot-deploy/{env.name}", timeout=0)
        deadline = time.monotonic() + 240
        while [run_state(r.id) for r in shard_runs(shards)] != ["RUNNING", "RUNNING"]:
            assert time.monotonic() < deadline and run_state(run.id) in ("SCHEDULED", "PENDING", "RUNNING"), \
                "the deploy never had two shards running"
            time.sleep(0.5)

        async def cancel() -> None:      # what the UI's Cancel button sends
            async with get_client() as client:
                await client.set_flow_run_state(run.id, Cancelling(message="cancelled by a person"))
        asyncio.run(cancel())
        assert wait_for_state(run.id, {"CANCELLED", "COMPLETED", "FAILED", "CRASHED"}, 120) == "CANCELLED"
        assert [wait_for_state(r.id, {"CANCELLED", "COMPLETED", "FAILED", "CRASHED"}, 120)
                for r in shard_runs(shards)] == ["CANCELLED", "CANCELLED"], "the shards were cancelled with it"
        assert env.ssh_rules() == [], "the cancelled deploy's hook revoked the rule its shards used"

        # what the cancelled shards left, the next deploy finishes (its lock comes back within its timeout)
        rows = hot_deploy(app=APP, environment=env.name, version=v2, store_block=releases.block)
    assert {r["result"] for r in rows} <= {"upgraded", "already running"}, rows
    assert [check.version(h) for h in env.fleet.hosts] == [v2] * 4
