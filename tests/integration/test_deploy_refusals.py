"""Bad input to the deploy flows: a clear error, and nothing changed on any
host; the ingress sweep; secrets absent from every log line and artifact."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.integration import fleet_checks as check
from tests.integration.conftest import RUNTIME_SECRET, copy_store

pytestmark = [pytest.mark.integration]
APP = "example_app"


@pytest.fixture
def fleet_on_v1(make_env, releases):
    from flows.provision import provision_host
    env = make_env(2)
    provision_host(app=APP, environment=env.name, version=releases.versions["v1"], store_block=releases.block)
    return env


def unchanged(env, releases, pids):
    """Every host still runs v1 in the same process and holds no other release."""
    v1 = releases.versions["v1"]
    assert [check.version(h) for h in env.fleet.hosts] == [v1] * len(pids)
    assert [check.beam_pid(h) for h in env.fleet.hosts] == pids
    assert all(check.releases_on(h) == [v1] for h in env.fleet.hosts)
    assert env.ssh_rules() == []


def test_bad_input_is_refused_with_a_clear_error_and_changes_nothing(fleet_on_v1, releases, moto_url):
    from blocks import load_environment
    from flows.deploy import hot_deploy
    from flows.fleet import FleetFailed
    from hotdeploy.hostplan import NeedsRestart
    from hotdeploy.versions import InvalidVersion
    from tasks.network import NoHosts
    from tasks.store import StoreError, UnknownVersion
    env = fleet_on_v1
    pids = [check.beam_pid(h) for h in env.fleet.hosts]
    deploy = dict(app=APP, environment=env.name, store_block=releases.block)

    with pytest.raises(UnknownVersion, match="2099.1.1 is not in the store"):
        hot_deploy(version="2099.1.1", **deploy)
    with pytest.raises(InvalidVersion, match="invalid version '1.0; rm -rf /'"):
        hot_deploy(version="1.0; rm -rf /", **deploy)
    unchanged(env, releases, pids)

    # v3's relup goes up from v2 only: strategy hot refuses hosts running v1 from the
    # environment record, before anything (strategy auto would restart them into v3)
    with pytest.raises(NeedsRestart, match=rf"runs {releases.versions['v1']}: its relup does not go up from "
                                           rf"{releases.versions['v1']}"):
        hot_deploy(version=releases.versions["v3"], strategy="hot", **deploy)
    unchanged(env, releases, pids)

    # an upgrade package that does not match its published checksum; then, with none, the
    # tarball every host needs (fetched only then: hosts on the package's base never need it)
    block, client, bucket = copy_store(releases, moto_url, ["v1", "v2"])
    v2 = releases.versions["v2"]
    client.put_object(Bucket=bucket, Key=f"{APP}/{v2}.upgrade.tar.gz", Body=b"\x1f\x8bnot it")
    with pytest.raises(StoreError, match="is corrupt: its upgrade package has sha256"):
        hot_deploy(app=APP, environment=env.name, version="latest", store_block=block)
    unchanged(env, releases, pids)
    client.delete_object(Bucket=bucket, Key=f"{APP}/{v2}.upgrade.tar.gz")
    client.put_object(Bucket=bucket, Key=f"{APP}/{v2}.tar.gz", Body=b"\x1f\x8bnot it")
    with pytest.raises(StoreError, match="is corrupt: its tarball has sha256"):
        hot_deploy(app=APP, environment=env.name, version="latest", store_block=block)
    unchanged(env, releases, pids)

    # a host key that is not the one in known_hosts
    real = load_environment(env.name)
    wrong = "".join(f"{h.address} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
                    for h in env.fleet.hosts)
    real.model_copy(update={"known_hosts": wrong}).save(env.name + "-wrongkey", overwrite=True)
    with pytest.raises(FleetFailed, match="does not match known_hosts"):
        hot_deploy(app=APP, environment=env.name + "-wrongkey", version=releases.versions["v2"],
                   store_block=releases.block)
    unchanged(env, releases, pids)

    # hosts whose keys are not in known_hosts at all: refused, never added
    real.model_copy(update={"known_hosts": ""}).save(env.name + "-nokeys", overwrite=True)
    with pytest.raises(FleetFailed, match="host key is not in the environment's known_hosts"):
        hot_deploy(app=APP, environment=env.name + "-nokeys", version=releases.versions["v2"],
                   store_block=releases.block)
    unchanged(env, releases, pids)

    # an environment whose tags match no instance
    real.model_copy(update={"environment_tag": "nowhere"}).save(env.name + "-empty", overwrite=True)
    with pytest.raises(NoHosts, match="no running instance is tagged Environment=nowhere"):
        hot_deploy(app=APP, environment=env.name + "-empty", version=releases.versions["v2"],
                   store_block=releases.block)
    unchanged(env, releases, pids)


def test_next_deploy_sweeps_our_expired_rule_and_leaves_others(fleet_on_v1, releases):
    from flows.deploy import hot_deploy
    from hotdeploy import ingress
    env = fleet_on_v1
    stale = ingress.description("dead-run", datetime.now(timezone.utc) - timedelta(minutes=5))
    env.ec2.authorize_security_group_ingress(GroupId=env.group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [
            {"CidrIp": "203.0.113.7/32", "Description": stale},
            {"CidrIp": "192.0.2.0/24", "Description": "office bastion"}]}])
    rows = hot_deploy(app=APP, environment=env.name, version=releases.versions["v1"], store_block=releases.block)
    assert [r["result"] for r in rows] == ["already running"] * 2
    assert [(r.cidr, r.description) for r in env.ssh_rules()] == [("192.0.2.0/24", "office bastion")]

    # the scheduled sweep does the same without a deploy
    from flows.sweep import sweep_ingress
    env.ec2.authorize_security_group_ingress(GroupId=env.group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.9/32", "Description": stale}]}])
    assert sweep_ingress(environments=[env.name]) == {env.name: [f"203.0.113.9/32 ({stale})"]}
    assert [r.cidr for r in env.ssh_rules()] == ["192.0.2.0/24"]


def test_secrets_appear_in_no_log_line_or_artifact(fleet_on_v1, releases, prefect_server):
    """Reads back, from the Prefect API, every log line and artifact of the
    session so far (releases, provisioning, deploys, refusals)."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter
    from flows.deploy import hot_deploy
    env = fleet_on_v1
    hot_deploy(app=APP, environment=env.name, version=releases.versions["v2"], store_block=releases.block)
    key_body = "".join(env.fleet.deployer_key.read_text().splitlines()[1:-1])
    secrets = [RUNTIME_SECRET, key_body[:40], key_body[-40:], "testing-secret"]

    async def everything() -> list[str]:
        async with get_client() as client:
            texts, offset = [], 0
            while True:
                logs = await client.read_logs(log_filter=LogFilter(), limit=200, offset=offset)
                texts += [log.message for log in logs]
                if len(logs) < 200:
                    break
                offset += 200
            texts += [str(a.data) + str(a.description) for a in await client.read_artifacts(limit=200)]
            return texts
    texts = asyncio.run(everything())
    assert len(texts) > 50
    for secret in secrets:
        assert not [t for t in texts if secret in t], "a secret reached the Prefect API"
