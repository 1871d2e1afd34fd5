"""What a Prefect user sees on a fresh server after setup, before any code
saved a block: the environment block type is there to be created in the UI,
with its AWS credentials as a nested block. A Prefect server of its own
(empty database), asked over its REST API."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(url: str, method: str = "GET", body: dict | None = None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture
def fresh_server(tmp_path):
    from localfleet.services import prefect_server_cmd
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    server = subprocess.Popen(prefect_server_cmd(port), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _api(env["PREFECT_API_URL"] + "/health")
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the fresh server did not start"
                time.sleep(0.5)
        yield env
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)


def test_setup_registers_the_environment_block_type_before_any_block_is_saved(fresh_server):
    api = fresh_server["PREFECT_API_URL"]
    subprocess.run([sys.executable, "-c", "from blocks.local import register_block_types; register_block_types()"],
                   cwd=ROOT, env=fresh_server, check=True, timeout=120)
    block_type = _api(f"{api}/block_types/slug/hotdeploy-environment")
    assert block_type["name"] and block_type["slug"] == "hotdeploy-environment"
    assert _api(f"{api}/block_documents/filter", "POST", {"block_types": {"slug": {"any_": ["hotdeploy-environment"]}}}) == []
    [schema] = _api(f"{api}/block_schemas/filter", "POST",
                    {"block_schemas": {"block_type_id": {"any_": [block_type["id"]]}}})
    refs = schema["fields"].get("block_schema_references", {})
    assert "aws_credentials" in refs, "the credentials are a nested block (the UI shows them as one)"


def test_apply_sends_an_environments_deployments_to_its_own_pool(fresh_server):
    """Production's runs only on workers inside production's network: its
    deployments are on the pool named for it, the rest on the default one."""
    api = fresh_server["PREFECT_API_URL"]
    cp = subprocess.run([sys.executable, "-m", "deployments.apply", "--app-dir", str(ROOT / "examples" / "example_app"),
                         "--pool-for", "production=prod-net"], cwd=ROOT, env=fresh_server, capture_output=True,
                        text=True, timeout=300)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "python -m deployments.worker --pool prod-net" in cp.stdout
    # a shard deployment is named for its environment (its runs get their parameters from the deploy)
    rows = [(d["name"], d["parameters"].get("environment", d["name"]), d["work_pool_name"])
            for d in _api(f"{api}/deployments/filter", "POST", {})]
    assert len(rows) == 11, rows
    assert all(pool == ("prod-net" if environment == "production" else "hotdeploy")
               for _, environment, pool in rows), rows
    # hot-deploy, rollback, status, deploy-shard
    assert sum(environment == "production" for _, environment, _ in rows) == 4, rows
