"""A worker on another machine: it has no checkout of this project and no
checkout of the app, and its container engine is on yet another machine.
Its deployment pulls the flow code from git, `ship` clones the app from a
git URL, and the build reaches the engine through a DockerHost block.

Played here by a process worker in a mount namespace of its own, whose
working directory, home and temp directory are a tmpfs nobody else sees
(file:// URLs stand for the remote repositories), and an engine reached at
a TCP address: anything the build tried to share through the filesystem
(a bind mount) would reach the engine empty. Real Prefect server and
worker, Docker, moto, hosts."""
from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import uuid

import pytest

from tests.conftest import ROOT
from tests.integration import fleet_checks as check
from tests.integration.conftest import copy_store

pytestmark = [pytest.mark.integration]


def _git(repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


class EngineOverTcp(socketserver.ThreadingTCPServer):
    """The local engine's API at tcp://127.0.0.1:PORT, as an engine on
    another machine is reached: requests only, no shared files."""
    daemon_threads = True

    def __init__(self, engine_socket: str = "/var/run/docker.sock"):
        self.engine_socket, self.connections = engine_socket, 0
        super().__init__(("127.0.0.1", 0), _Relay)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.server_address[1]}"


class _Relay(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        engine = socket.socket(socket.AF_UNIX)
        engine.connect(self.server.engine_socket)
        self.server.connections += 1
        peer = {self.request: engine, engine: self.request}
        try:
            while True:
                for s in select.select(list(peer), [], [], 5)[0]:
                    data = s.recv(1 << 16)
                    if not data:
                        return
                    peer[s].sendall(data)
        except OSError:
            return
        finally:
            engine.close()


def test_a_worker_elsewhere_pulls_the_code_from_git_ships_the_app_from_a_git_url_and_builds_on_a_remote_engine(
        make_env, releases, moto_url, tmp_path):
    from prefect import Flow
    from prefect.deployments import run_deployment
    from prefect.runner.storage import GitRepository
    from prefect_docker import DockerHost

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

    engine = EngineOverTcp()
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    engine_block = f"engine-{uuid.uuid4().hex[:6]}"
    DockerHost(base_url=engine.url).save(engine_block)

    pool = f"elsewhere-{uuid.uuid4().hex[:6]}"
    asyncio.run(ensure_pool(pool))
    Flow.from_source(source=GitRepository(url=f"file://{ROOT}"), entrypoint="flows/ship.py:ship").deploy(
        name=env.name, work_pool_name=pool, print_next_steps=False, ignore_warnings=True,
        parameters=dict(app_dir=f"file://{app}", environment=env.name, store_block=block, git_ref=sha,
                        docker_host_block=engine_block))
    elsewhere = tmp_path / "worker"
    elsewhere.mkdir()
    log = open(tmp_path / "worker.log", "w")
    private = ('mount -t tmpfs hotdeploy-worker "$0" && cd "$0" && mkdir home tmp && '
               'export HOME="$0/home" TMPDIR="$0/tmp" && exec "$@"')
    worker = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", private, str(elsewhere),
                               sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1", "PYTHONPATH": ""})
    try:
        run = run_deployment(f"ship/{env.name}", timeout=900)
    finally:
        engine.shutdown()
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:   # a worker slow to drain under load: what it ran is checked below
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(30)
    assert run.state.is_completed(), (run.state.message, (tmp_path / "worker.log").read_text()[-3000:])
    assert check.version(host) != releases.versions["v1"], "the host runs what the worker shipped"
    assert f"shipped example_app {check.version(host)} to {env.name}: 1 upgraded" in run.state.message
    assert engine.connections > 0, "the build went to the engine named by the DockerHost block"
    assert not any(elsewhere.iterdir()), "the worker's files (code, clone, workspace) were never outside its namespace"
