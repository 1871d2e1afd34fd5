"""The warm worker (`python -m deployments.worker`): its flow runs are forked
from its engine server, end as runs of a plain process worker do
(Completed, Failed, Cancelled, Crashed), import our code themselves, and
start cold when the libraries changed. Real Prefect server and worker."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration import fleet_checks as check
from tests.integration.conftest import process_worker_on
from tests.integration.test_run_ends import wait_for_state

pytestmark = [pytest.mark.integration]

WARM = str(ROOT / "deployments" / "warm.py")


def _processes() -> dict[int, tuple[int, list[str]]]:
    """pid -> (parent pid, argv) of every process."""
    seen = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        seen[int(entry)] = (ppid, [a.decode(errors="replace") for a in argv if a])
    return seen


def engine_server(worker_pid: int) -> int | None:
    """The pid of WORKER_PID's engine server, None while there is not exactly one."""
    found = [pid for pid, (ppid, argv) in _processes().items()
             if ppid == worker_pid and WARM in argv and "--serve" in argv]
    return found[0] if len(found) == 1 else None


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(what, seconds: float, why: str):
    deadline = time.monotonic() + seconds
    while not (got := what()):
        assert time.monotonic() < deadline, why
        time.sleep(0.2)
    return got


def ended(run_id, seconds: float = 120) -> str:
    return wait_for_state(run_id, {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}, seconds)


def who(run_id) -> dict:
    """What the run's engine said of itself: pid, parent, which modules it had."""
    lines = check.run_logs(run_id, until=lambda line: line.startswith("engine pid="))
    [line] = [line for line in lines if line.startswith("engine pid=")]
    return dict(re.findall(r"(\w+)=(\S+)", line))


@pytest.fixture(scope="module")
def warm_worker(prefect_server, tmp_path_factory):
    """A pool with the test flows deployed, a warm worker on it, and a
    library directory on its path that a test can change."""
    from prefect import Flow

    from deployments.apply import ensure_pool
    pool = f"warm-{uuid.uuid4().hex[:6]}"
    asyncio.run(ensure_pool(pool))
    for name in ("who_runs", "fails", "sleeps"):
        Flow.from_source(source=str(ROOT), entrypoint=f"tests/integration/warm_flows.py:{name}").deploy(
            name=pool, work_pool_name=pool, print_next_steps=False, ignore_warnings=True)
    work = tmp_path_factory.mktemp("warm")
    library = work / "library"
    library.mkdir()
    log = work / "worker.log"
    with process_worker_on(pool, log, env={"PYTHONPATH": str(library)}) as worker:
        server = wait_until(lambda: engine_server(worker.pid), 120, "the engine server never started")
        wait_until(lambda: "ready on" in log.read_text(), 120, "the engine server never got ready")
        yield pool, worker, server, library, log


def run(pool: str, flow: str, **parameters):
    from prefect.deployments import run_deployment
    return run_deployment(f"{flow.replace('_', '-')}/{pool}", parameters=parameters, timeout=0)


def test_a_run_is_forked_from_the_engine_server_and_ends_as_a_cold_run_would(warm_worker):
    pool, worker, server, _, log = warm_worker
    done = run(pool, "who_runs")
    assert ended(done.id) == "COMPLETED"
    said = who(done.id)
    assert int(said["parent"]) == server, f"the engine was forked by the server {server}: {said}"
    assert said["paramiko"] == "True", "the libraries come imported"
    assert said["models"] == "True", "and botocore's S3 and EC2 models loaded"
    assert said["ours"] == "False", "our own code is imported by the run, from its deployment's code"
    wait_until(lambda: "printed by the flow" in log.read_text(), 30, "the flow's output reached the worker")

    failed = run(pool, "fails")
    assert ended(failed.id) == "FAILED"
    assert any("this flow fails on purpose" in line for line in check.run_logs(
        failed.id, until=lambda line: "fails on purpose" in line))


def test_a_cancelled_run_ends_cancelled_and_its_engine_is_gone(warm_worker):
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling
    pool, *_ = warm_worker
    sleeping = run(pool, "sleeps")
    engine = int(who(sleeping.id)["pid"])

    async def cancel() -> None:      # what the UI's Cancel button sends
        async with get_client() as client:
            await client.set_flow_run_state(sleeping.id, Cancelling(message="cancelled by a person"))
    asyncio.run(cancel())
    assert ended(sleeping.id) == "CANCELLED"
    wait_until(lambda: not alive(engine), 60, "the cancelled run's engine process is gone")


def test_a_killed_client_takes_its_engine_with_it_and_the_run_is_crashed(warm_worker):
    pool, worker, *_ = warm_worker
    sleeping = run(pool, "sleeps")
    engine = int(who(sleeping.id)["pid"])
    [client] = [pid for pid, (ppid, argv) in _processes().items()
                if ppid == worker.pid and WARM in argv and "--serve" not in argv]
    os.kill(client, signal.SIGKILL)         # what the worker does to a run that ignores its TERM
    wait_until(lambda: not alive(engine), 30, "the engine ended with its client")
    assert ended(sleeping.id) == "CRASHED"


def test_a_library_change_starts_that_run_cold_and_restarts_the_server(warm_worker):
    pool, worker, server, library, log = warm_worker
    (library / "installed_meanwhile.py").write_text("")        # as pip install changes site-packages
    cold = run(pool, "who_runs")
    assert ended(cold.id) == "COMPLETED"
    assert int(who(cold.id)["parent"]) != server, "started cold, by its client"
    assert f"cold start ({library} changed since the server started: restarting it)" in log.read_text()
    again = run(pool, "who_runs")
    assert ended(again.id) == "COMPLETED"
    assert int(who(again.id)["parent"]) == engine_server(worker.pid) == server, \
        "the server restarted in place (same process, new imports) and forks again"


def test_an_engine_server_that_died_is_started_again_and_forks_the_next_runs(warm_worker):
    pool, worker, server, _, log = warm_worker
    readies = log.read_text().count("ready on")
    os.kill(server, signal.SIGKILL)
    meanwhile = run(pool, "who_runs")       # cold or warm, depending on when it comes: it completes
    again = wait_until(lambda: (pid := engine_server(worker.pid)) not in (None, server) and pid, 60,
                       "the worker started its engine server again")
    wait_until(lambda: log.read_text().count("ready on") > readies, 120, "the new server got ready")
    assert ended(meanwhile.id) == "COMPLETED"
    warm = run(pool, "who_runs")
    assert ended(warm.id) == "COMPLETED"
    assert int(who(warm.id)["parent"]) == again


def test_with_no_engine_server_the_client_runs_the_engine_cold(tmp_path):
    import subprocess
    import sys
    cp = subprocess.run([sys.executable, WARM, str(tmp_path / "nobody.sock")], capture_output=True, text=True,
                        env={**os.environ, "PREFECT__FLOW_RUN_ID": "not-a-run-id"}, timeout=120)
    assert "hotdeploy: cold start (no engine server answers)" in cp.stderr, cp.stderr
    assert "Invalid flow run id" in cp.stderr and cp.returncode == 1, "it became `python -m prefect.engine`"
