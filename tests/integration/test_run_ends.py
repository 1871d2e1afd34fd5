"""Runs that end other than by returning: cancelled from the API (as the UI's
Cancel button does) while a process worker runs them, and killed with their
process so nothing of theirs runs again. Each ends in a final state Prefect
shows, and leaves no SSH rule open. Real Prefect server and process worker,
moto, namespace hosts."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import ROOT
from tests.integration import fleet_checks as check
from tests.integration.conftest import process_worker_on
from tests.integration.test_locking import APP, provision, wait_for_rule

pytestmark = [pytest.mark.integration]


def run_state(run_id) -> str:
    from prefect.client.orchestration import get_client

    async def read() -> str:
        async with get_client() as client:
            return (await client.read_flow_run(run_id)).state.type.value
    return asyncio.run(read())


def wait_for_state(run_id, wanted: set[str], seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while (state := run_state(run_id)) not in wanted:
        assert time.monotonic() < deadline, f"run {run_id} still {state} after {seconds} s (wanted {wanted})"
        time.sleep(0.5)
    return state


@pytest.fixture
def process_worker(tmp_path):
    """A `process` work pool of its own and a worker on it, as the README starts one."""
    from deployments.apply import ensure_pool
    pool = f"test-{uuid.uuid4().hex[:6]}"
    asyncio.run(ensure_pool(pool))
    with process_worker_on(pool, tmp_path / "worker.log"):
        yield pool


def test_a_run_cancelled_from_the_api_revokes_its_rule_and_frees_the_environment(
        make_env, releases, process_worker):
    from prefect import Flow
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    from flows.deploy import hot_deploy
    from tasks.lock import LEASE_SECONDS
    env = make_env(1, health_soak_seconds=30,      # the run holds its rule while we cancel it
                   lock_timeout_seconds=LEASE_SECONDS + 45)   # the next run fails if the lock never comes back
    provision(env, releases)
    v2 = releases.versions["v2"]
    Flow.from_source(source=str(ROOT), entrypoint="flows/deploy.py:hot_deploy").deploy(
        name=env.name, work_pool_name=process_worker, print_next_steps=False, ignore_warnings=True,
        parameters=dict(app=APP, environment=env.name, version=v2, store_block=releases.block))
    run = run_deployment(f"hot-deploy/{env.name}", timeout=0)
    wait_for_rule(env)

    async def cancel() -> None:      # what the UI's Cancel button sends
        async with get_client() as client:
            await client.set_flow_run_state(run.id, Cancelling(message="cancelled by a person"))
    asyncio.run(cancel())
    assert wait_for_state(run.id, {"CANCELLED", "COMPLETED", "FAILED", "CRASHED"}, 120) == "CANCELLED"
    assert env.ssh_rules() == [], "the cancelled run's hook revoked its rule"

    # the environment's lock came back: this run got it within its lock timeout
    rows = hot_deploy(app=APP, environment=env.name, version=v2, store_block=releases.block)
    assert {r["result"] for r in rows} <= {"upgraded", "already running"}
    assert [check.version(h) for h in env.fleet.hosts] == [v2]
    assert env.ssh_rules() == []


def test_a_run_whose_process_died_is_marked_crashed_and_its_rule_swept(make_env, releases):
    from deployments.automations import NAME, ensure_crash_detection
    from flows.sweep import sweep_ingress
    from hotdeploy.ingress import run_of
    env = make_env(1, health_soak_seconds=60)
    provision(env, releases)
    # Heartbeats every 30 s (Prefect's minimum; the session's setting), a run
    # silent for 45 s is dead: shorter than the demo's 90 s, to keep this test short.
    asyncio.run(ensure_crash_detection(45))
    try:
        code = (f"from flows.deploy import hot_deploy; hot_deploy(app={APP!r}, environment={env.name!r}, "
                f"version={releases.versions['v2']!r}, store_block={releases.block!r})")
        victim = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True,
                                  env={**os.environ, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"})
        wait_for_rule(env)
        [rule] = env.ssh_rules()
        os.killpg(victim.pid, signal.SIGKILL)      # the machine died: no finally, no hook
        victim.wait()
        run_id = run_of(rule)
        assert run_state(run_id) == "RUNNING"
        assert wait_for_state(run_id, {"CRASHED"}, 120) == "CRASHED"

        deadline = time.monotonic() + 120          # the dead run's lease runs out, then the sweep revokes
        while env.ssh_rules():
            assert time.monotonic() < deadline, "the sweep never revoked the dead run's rule"
            sweep_ingress(environments=[env.name], lock_wait_seconds=1)
            time.sleep(2)
    finally:
        asyncio.run(_delete_automation(NAME))


async def _delete_automation(name: str) -> None:
    from prefect.client.orchestration import get_client
    async with get_client() as client:
        for automation in await client.read_automations_by_name(name):
            await client.delete_automation(automation.id)


def test_a_refused_run_on_a_worker_ends_failed_with_its_line_and_no_traceback(make_env, releases, process_worker):
    """The worker's process re-raises the run's known exception at exit;
    the run's logs hold the one line, not Prefect's traceback of it."""
    from prefect import Flow
    from prefect.deployments import run_deployment

    from tests.integration.fleet_checks import run_logs
    env = make_env(1)
    Flow.from_source(source=str(ROOT), entrypoint="flows/deploy.py:hot_deploy").deploy(
        name=f"{env.name}-refused", work_pool_name=process_worker, print_next_steps=False, ignore_warnings=True,
        parameters=dict(app=APP, environment=env.name, version="9.9.9", store_block=releases.block))
    run = run_deployment(f"hot-deploy/{env.name}-refused", timeout=0)
    assert wait_for_state(run.id, {"COMPLETED", "FAILED", "CRASHED"}, 120) == "FAILED"
    # the worker says last that the run's process exited: every line of the run is in by then
    logs = run_logs(run.id, until=lambda line: "exited" in line and "status code" in line)
    assert any(line.startswith("refused: ") and "9.9.9" in line for line in logs), logs
    assert not any("Engine execution exited" in line or "Traceback" in line for line in logs), logs
