"""A worker on another machine: it has no checkout of this project and no
checkout of the app. Its deployment pulls the flow code from git, and `ship`
clones the app from a git URL. Played here by a process worker started in a
directory of its own with a home of its own (file:// URLs stand for the
remote repositories). Real Prefect server and worker, Docker, moto, hosts."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import pytest

from tests.conftest import ROOT
from tests.integration import fleet_checks as check
from tests.integration.conftest import copy_store

pytestmark = [pytest.mark.integration]


def _git(repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_a_worker_elsewhere_pulls_the_code_from_git_and_ships_the_app_from_a_git_url(
        make_env, releases, moto_url, tmp_path):
    from prefect import Flow
    from prefect.deployments import run_deployment
    from prefect.runner.storage import GitRepository

    from deployments.apply import ensure_pool
    from flows.provision import provision_host
    if _git(ROOT, "status", "--porcelain", "--untracked-files=no"):
        pytest.skip("the worker pulls committed code: commit first (CI runs on a clean clone)")
    block, _, _ = copy_store(releases, moto_url, ["v1"])
    env = make_env(1)
    provision_host(app="example_app", environment=env.name, version=releases.versions["v1"], store_block=block)
    [host] = env.fleet.hosts

    app = tmp_path / "app"                      # the app's repository, at v2
    subprocess.run([str(ROOT / "examples" / "checkout-version"), "v2", str(app)], check=True)
    _git(app, "init", "-q")
    _git(app, "add", "-A")
    _git(app, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m", "v2")
    sha = _git(app, "rev-parse", "HEAD")

    pool = f"elsewhere-{uuid.uuid4().hex[:6]}"
    asyncio.run(ensure_pool(pool))
    Flow.from_source(source=GitRepository(url=f"file://{ROOT}"), entrypoint="flows/ship.py:ship").deploy(
        name=env.name, work_pool_name=pool, print_next_steps=False, ignore_warnings=True,
        parameters=dict(app_dir=f"file://{app}", environment=env.name, store_block=block, git_ref=sha))
    elsewhere, home = tmp_path / "worker", tmp_path / "home"
    elsewhere.mkdir()
    home.mkdir()
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"],
                              cwd=elsewhere, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "HOME": str(home), "PREFECT_WORKER_QUERY_SECONDS": "1",
                                   "PYTHONPATH": ""})
    try:
        run = run_deployment(f"ship/{env.name}", timeout=900)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:   # a worker slow to drain under load: what it ran is checked below
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(30)
    assert run.state.is_completed(), (run.state.message, (tmp_path / "worker.log").read_text()[-3000:])
    assert check.version(host) != releases.versions["v1"], "the host runs what the worker shipped"
    assert f"shipped example_app {check.version(host)} to {env.name}: 1 upgraded" in run.state.message
