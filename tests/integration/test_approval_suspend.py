"""An approval that waits long: the run suspends (its process ends, the
worker's slot is free, the environment stays locked and no SSH rule stays
open), and when approved starts again on its pool and goes on after its
canary; one nobody answers is resumed by the sweep once its deadline passed
and takes its canary back. Real Prefect server and warm process worker,
moto, namespace hosts, releases built by the pipeline."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.conftest import ROOT
from tests.integration import fleet_checks as check
from tests.integration.conftest import copy_store, process_worker_on
from tests.integration.test_canary import APP, permanent, provision
from tests.integration.test_run_ends import process_worker, wait_for_state  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.integration]


def status_on_worker(env, pool: str, block: str):
    from prefect import Flow
    from prefect.deployments import run_deployment
    Flow.from_source(source=str(ROOT), entrypoint="flows/status.py:status").deploy(
        name=env.name, work_pool_name=pool, print_next_steps=False, ignore_warnings=True,
        parameters=dict(app=APP, environment=env.name, store_block=block))
    return run_deployment(f"status/{env.name}", timeout=0)


def deploy_on_worker(env, pool: str, block: str, version: str):
    """hot_deploy as a deployment on POOL, and a run of it (as CI's
    `prefect deployment run` starts one)."""
    from prefect import Flow
    from prefect.deployments import run_deployment
    Flow.from_source(source=str(ROOT), entrypoint="flows/deploy.py:hot_deploy").deploy(
        name=env.name, work_pool_name=pool, print_next_steps=False, ignore_warnings=True,
        parameters=dict(app=APP, environment=env.name, version=version, store_block=block))
    return run_deployment(f"hot-deploy/{env.name}", timeout=0)


def wait_suspended(env, run) -> None:
    """The run is Suspended (its process ends: the worker starts it again when answered)."""
    from prefect.client.orchestration import get_client
    state = wait_for_state(run.id, {"PAUSED", "COMPLETED", "FAILED", "CRASHED"}, 180)
    with get_client(sync_client=True) as client:
        said = client.read_flow_run(run.id).state
    assert said.name == "Suspended", (said.name, said.message, check.run_logs(run.id)[-30:])
    logs = check.run_logs(run.id, until=lambda line: "suspending until the approval is answered" in line)
    assert any("suspending until the approval is answered" in line for line in logs), logs


@pytest.fixture
def one_slot_worker(tmp_path):
    """A pool of its own and a worker on it that runs one flow run at a time."""
    from deployments.apply import ensure_pool
    pool = f"test-{uuid.uuid4().hex[:6]}"
    asyncio.run(ensure_pool(pool))
    with process_worker_on(pool, tmp_path / "worker.log", "--limit", "1"):
        yield pool


def test_a_long_approval_suspends_the_run_keeps_the_environment_and_goes_on_when_approved(
        make_env, releases, moto_url, one_slot_worker):
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    from tasks.awaiting import read_awaiting
    from tasks.lock import lock_is_held
    block, _, _ = copy_store(releases, moto_url, ["v1", "v2", "v3"])
    v2, v3 = releases.versions["v2"], releases.versions["v3"]
    env = make_env(2, canary=1, approval=True, approval_hold_seconds=0, approval_timeout_seconds=900,
                   health_soak_seconds=2.0, lock_timeout_seconds=3)
    provision(env, block, v2)
    canary, other = env.fleet.hosts
    pid = check.beam_pid(canary)
    run = deploy_on_worker(env, one_slot_worker, block, v3)
    wait_suspended(env, run)

    # while it waits: the canary runs v3, not permanent; the other host v2; the lock
    # held; no rule open; what the resumed run needs is kept beside the lock
    assert (check.version(canary), permanent(canary), check.version(other)) == (v3, v2, v2)
    assert lock_is_held(env.name) and env.ssh_rules() == [], check.run_logs(run.id)[-20:]
    # the worker's one slot is free: another run on the pool starts, and finds the environment held
    status_run = status_on_worker(env, one_slot_worker, block)
    assert wait_for_state(status_run.id, {"COMPLETED", "FAILED", "CRASHED"}, 120) == "FAILED"
    with get_client(sync_client=True) as client:
        said = client.read_flow_run(status_run.id).state.message
    assert "A deploy suspended for an approval holds it" in said and str(run.id) in said, said
    awaiting = read_awaiting(env.name)
    assert (awaiting.run_id, awaiting.version, [h["host"] for h in awaiting.canary]) == (str(run.id), v3,
                                                                                       [canary.name])

    resume_flow_run(run.id, run_input={"approve": True, "comment": "looked at it after lunch"})
    assert wait_for_state(run.id, {"COMPLETED", "FAILED", "CRASHED"}, 300) == "COMPLETED"
    assert [check.version(h) for h in env.fleet.hosts] == [v3, v3]
    assert [permanent(h) for h in env.fleet.hosts] == [v3, v3]
    assert check.beam_pid(canary) == pid, "the canary was upgraded once, in place"
    assert read_awaiting(env.name) is None and not lock_is_held(env.name) and env.ssh_rules() == []
    logs = check.run_logs(run.id, until=lambda line: "approved: looked at it after lunch" in line)
    assert any("approved: looked at it after lunch" in line for line in logs), logs


def test_an_approval_nobody_answers_is_answered_by_the_sweep_and_takes_the_canary_back(
        make_env, releases, moto_url, process_worker):  # noqa: F811
    from datetime import datetime, timezone

    from flows.sweep import sweep_ingress
    from tasks.awaiting import read_awaiting
    from tasks.lock import lock_is_held
    block, client, bucket = copy_store(releases, moto_url, ["v1", "v2", "v3"])
    v2, v3 = releases.versions["v2"], releases.versions["v3"]
    env = make_env(2, canary=1, approval=True, approval_hold_seconds=0, approval_timeout_seconds=20,
                   health_soak_seconds=2.0)
    provision(env, block, v2)
    run = deploy_on_worker(env, process_worker, block, v3)
    wait_suspended(env, run)

    sweep_ingress(environments=[env.name])          # before the deadline: it waits
    assert read_awaiting(env.name) is not None and lock_is_held(env.name)
    left = (datetime.fromisoformat(read_awaiting(env.name).deadline) - datetime.now(timezone.utc)).total_seconds()
    time.sleep(max(0.0, left) + 0.5)
    sweep_ingress(environments=[env.name])          # what the run scheduled at the deadline does
    assert wait_for_state(run.id, {"COMPLETED", "FAILED", "CRASHED"}, 300) == "FAILED"
    assert [check.version(h) for h in env.fleet.hosts] == [v2, v2]
    assert [permanent(h) for h in env.fleet.hosts] == [v2, v2]
    assert client.get_object(Bucket=bucket, Key=f"{APP}/{v3}.quarantine.json")
    assert read_awaiting(env.name) is None and not lock_is_held(env.name) and env.ssh_rules() == []
    logs = check.run_logs(run.id, until=lambda line: "no approval within 20 s" in line)
    assert any("no approval within 20 s" in line for line in logs), logs
