"""hot_deploy, rollback and provision_host on a real local fleet: namespace
hosts with sshd, the security group enforced by nftables, moto's EC2 API, a
real release of the example app on each host, a Prefect server."""
from __future__ import annotations

import threading
import time

import pytest

from tests.integration import fleet_checks as check

pytestmark = [pytest.mark.integration]
APP = "example_app"


def provision(env, releases, version: str) -> list[dict]:
    from flows.provision import provision_host
    return provision_host(app=APP, environment=env.name, version=releases.versions.get(version, version),
                          store_block=releases.block)


def ssh_works(env) -> bool:
    from blocks import load_environment
    from tasks.remote import Connection, Host, RemoteError
    host = env.fleet.hosts[0]
    try:
        Connection(load_environment(env.name), Host("i", host.name, host.address), attempts=1).close()
        return True
    except RemoteError:
        return False


def test_hot_deploy_then_rollback_under_load_keeps_pids_state_and_every_request(make_env, releases):
    from flows.deploy import hot_deploy
    from flows.rollback import rollback
    from tasks.probe import LoadClient
    v1, v2 = releases.versions["v1"], releases.versions["v2"]
    env = make_env(3)
    hosts = env.fleet.hosts

    assert not ssh_works(env), "SSH must be blocked while the group has no rule for us"
    rows = provision(env, releases, "v1")
    assert [(r["from_version"], r["result"]) for r in rows] == [(None, "provisioned")] * 3, rows
    assert [check.version(h) for h in hosts] == [v1] * 3
    pids = [check.beam_pid(h) for h in hosts]
    again = provision(env, releases, "v1")
    assert [r["result"] for r in again] == ["already running"] * 3, "provisioning twice changes nothing"
    assert [check.beam_pid(h) for h in hosts] == pids
    for h in hosts:  # some state for code_change to carry
        for _ in range(5):
            check.get(h.address, "/")
    before = [check.state(h) for h in hosts]
    assert all(shape == "tuple" for _, shape in before)

    with LoadClient([h.address for h in hosts], connections=2, max_seconds=240) as load:
        time.sleep(0.5)
        rows = hot_deploy(app=APP, environment=env.name, version=v2, store_block=releases.block)
        time.sleep(0.5)
    up = load.stats
    assert up.sent > 100 and up.failed == 0, up.summary()
    assert [r["result"] for r in rows] == ["upgraded"] * 3
    assert [(r["from_version"], r["to_version"]) for r in rows] == [(v1, v2)] * 3
    assert [check.version(h) for h in hosts] == [v2] * 3
    assert [check.beam_pid(h) for h in hosts] == pids, "a hot upgrade keeps the node's OS process"
    after = [check.state(h) for h in hosts]
    for (hits0, _), (hits1, shape) in zip(before, after):
        assert shape == "map" and hits1 >= hits0, "gen_server state converted by code_change, not reset"
    assert env.ssh_rules() == [] and not ssh_works(env), "the ingress rule is revoked after the deploy"
    assert _latest_artifact(f"hot-deploy-progress-{env.name}").data == 100.0, "progress shown in the UI"

    again = hot_deploy(app=APP, environment=env.name, version=v2, store_block=releases.block)
    assert [r["result"] for r in again] == ["already running"] * 3

    with LoadClient([h.address for h in hosts], connections=2, max_seconds=240) as load:
        time.sleep(0.5)
        rows = rollback(app=APP, environment=env.name, to_version=v1, store_block=releases.block)
        time.sleep(0.5)
    down = load.stats
    assert down.sent > 100 and down.failed == 0, down.summary()
    assert [r["result"] for r in rows] == ["downgraded"] * 3
    assert [check.version(h) for h in hosts] == [v1] * 3
    assert [check.beam_pid(h) for h in hosts] == pids
    for (hits1, _), (hits2, shape) in zip(after, (check.state(h) for h in hosts)):
        assert shape == "tuple" and hits2 >= hits1, "state converted back by code_change({down, _})"
    assert env.ssh_rules() == []


def test_host_cut_off_mid_deploy_fails_the_flow_others_finish_and_a_rerun_completes(make_env, releases, moto_url):
    from flows.deploy import hot_deploy
    from flows.fleet import FleetFailed
    from flows.provision import provision_host
    from tests.integration.conftest import copy_store
    v2 = releases.versions["v2"]
    # Without the 20 KB upgrade package every host gets the 9 MB tarball: an
    # upload long enough to be cut in its middle, whatever the machine's load.
    block, client, bucket = copy_store(releases, moto_url, ["v1", "v2"])
    client.delete_object(Bucket=bucket, Key=f"{APP}/{v2}.upgrade.tar.gz")
    env = make_env(3)
    provision_host(app=APP, environment=env.name, version=releases.versions["v1"], store_block=block)
    victim = env.fleet.hosts[1]
    target_dir = victim.dir / "srv" / APP / "releases" / f".{APP}-{v2}.tar.gz.part"   # the upload has begun
    cut = threading.Event()

    def cut_when_transfer_starts():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not target_dir.exists():
            time.sleep(0.005)
        if target_dir.exists():      # never cut a host of a later test
            victim.cut()
            cut.set()
    threading.Thread(target=cut_when_transfer_starts, daemon=True).start()

    with pytest.raises(FleetFailed) as failure:   # all at once: the others must finish regardless
        hot_deploy(app=APP, environment=env.name, version=v2, store_block=block,
                   canary=0, wave_size="100%", max_failed_hosts=3)
    assert cut.is_set()
    assert victim.name in str(failure.value) and "1 of 3" in str(failure.value)
    others = [h for h in env.fleet.hosts if h is not victim]
    assert [check.version(h) for h in others] == [v2, v2]
    assert env.ssh_rules() == [], "revoked even though a host failed"
    summary = _latest_table_artifact(f"hot-deploy-{env.name}")
    assert victim.name in summary and "failed" in summary

    victim.restore()
    rows = hot_deploy(app=APP, environment=env.name, version=v2, store_block=block)
    by_host = {r["host"]: r["result"] for r in rows}
    assert by_host.pop(victim.name) == "upgraded"
    assert set(by_host.values()) == {"already running"}
    assert [check.version(h) for h in env.fleet.hosts] == [v2] * 3


def test_failed_health_gate_rolls_that_host_back_alone(make_env, releases, moto_url, tmp_path_factory):
    from flows.deploy import hot_deploy
    from flows.fleet import FleetFailed
    from flows.release import release
    from tasks.probe import LoadClient
    from tests.integration.conftest import checkout, copy_store
    block, _, _ = copy_store(releases, moto_url, ["v1", "v2"])
    bad = release(app_dir=str(checkout(tmp_path_factory, "bad-health")), store_block=block)["version"]
    v2 = releases.versions["v2"]
    env = make_env(3)
    from flows.provision import provision_host
    provision_host(app=APP, environment=env.name, version=v2, store_block=block)
    sick = env.fleet.hosts[0]
    (sick.dir / "tmp" / "break-health").touch()
    pids = [check.beam_pid(h) for h in env.fleet.hosts]

    with LoadClient([h.address for h in env.fleet.hosts], connections=2, max_seconds=240) as load:
        with pytest.raises(FleetFailed) as failure:
            hot_deploy(app=APP, environment=env.name, version="latest", store_block=block, max_failed_hosts=1)
    assert load.stats.failed == 0, load.stats.summary()
    assert sick.name in str(failure.value) and "rolled back" in str(failure.value)
    assert "health gate" in str(failure.value)
    (sick.dir / "tmp" / "break-health").unlink()
    assert check.version(sick) == v2, "the host whose gate failed is back on the previous version"
    assert [check.version(h) for h in env.fleet.hosts[1:]] == [bad, bad], "the others stay upgraded"
    assert [check.beam_pid(h) for h in env.fleet.hosts] == pids
    assert env.ssh_rules() == []


def _latest_artifact(key: str):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async def read():
        async with get_client() as client:
            arts = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                               sort=ArtifactSort.CREATED_DESC, limit=1)
            return arts[0] if arts else None
    return asyncio.run(read())


def _latest_table_artifact(key: str) -> str:
    return str(_latest_artifact(key).data)


def _latest_table_artifact_description(key: str) -> str:
    return str(_latest_artifact(key).description)
