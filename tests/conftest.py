"""Session services for the tests, all real: one Prefect server (sqlite), the
local Docker engine (started if none answers) with the offline base image,
and moto's server as S3 on 127.0.0.1.

Prefect reads its settings when first imported, so the server's address is
put in the environment in pytest_configure, before any test module imports
prefect; the server starts once integration tests are collected and is
waited for only by tests that use it.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_server: subprocess.Popen | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_configure(config):
    home = Path(tempfile.mkdtemp(prefix="hotdeploy-prefect-"))
    port = _free_port()
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        # The demo's crash detection marks a run silent for 3 heartbeats
        # Crashed; every run of the session beats as often as the demo's do.
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    }
    os.environ.update(env)


def pytest_collection_modifyitems(session, config, items):
    """The Prefect server starts (in the background, while the first tests
    run) only when integration tests were collected: the unit tests and the
    node program's tests need none."""
    global _server
    if os.environ.get("HOTDEPLOY_UNIT_ONLY") or _server is not None:
        return
    if not any("tests/integration/" in str(item.fspath) for item in items):
        return
    port = int(os.environ["PREFECT_API_URL"].rsplit(":", 1)[1].split("/")[0])
    log = open(Path(os.environ["PREFECT_HOME"]) / "server.log", "w")
    from localfleet.services import prefect_server_cmd
    _server = subprocess.Popen(prefect_server_cmd(port), stdout=log, stderr=subprocess.STDOUT,
                               env=dict(os.environ), start_new_session=True)


def pytest_unconfigure(config):
    if "prefect" in sys.modules:
        # Send the last logs and events while the server still answers;
        # otherwise the exit hooks retry against a dead server for a minute.
        from prefect._internal.concurrency.services import QueueService
        QueueService.drain_all(timeout=20)
    if _server is not None:
        _server.terminate()
        try:
            _server.wait(20)
        except subprocess.TimeoutExpired:
            _server.kill()
    shutil.rmtree(os.environ["PREFECT_HOME"], ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_server() -> str:
    url = os.environ["PREFECT_API_URL"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if _server is not None and _server.poll() is not None:
            pytest.fail(f"prefect server exited with {_server.returncode}; see {os.environ['PREFECT_HOME']}/server.log")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return url
        except OSError:
            time.sleep(0.5)
    pytest.fail("prefect server did not answer within 120 s")


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """dockerd running and the offline base image present (built once, cached)."""
    for script in ("ensure-dockerd.sh", "base-image.sh"):
        subprocess.run(["bash", str(ROOT / "scripts" / script)], check=True)


@pytest.fixture(scope="session")
def moto_url() -> str:
    import logging

    from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def no_leftover_hosts():
    """Leak check: every namespace host and the test bridge are gone at the
    end. Only in a session that made fleets: a unit-test run beside another
    session must not remove that session's bridge."""
    yield
    from localfleet import fleet
    if os.geteuid() != 0 or os.environ.get("HOTDEPLOY_UNIT_ONLY") or not fleet.fleets_started:
        return
    from localfleet.fleet import own_leftovers, remove_bridge
    remaining = own_leftovers()
    remove_bridge()                   # unless a session running beside this one still uses it
    assert remaining == [], f"test hosts left behind: {remaining}"


@pytest.fixture
def example_version(tmp_path):
    """Write the example app as of a version (v1, v2, v3, broken-tests) and return its dir."""
    def make(version: str) -> Path:
        dest = tmp_path / f"example-{version}"
        subprocess.run([str(ROOT / "examples" / "checkout-version"), version, str(dest)], check=True)
        return dest
    return make
