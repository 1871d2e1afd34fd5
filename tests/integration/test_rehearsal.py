"""The rehearsal flow and the production gate, on a real fleet under load."""
from __future__ import annotations

import json

import pytest

from tests.integration import fleet_checks as check
from tests.integration.conftest import checkout, copy_store

pytestmark = [pytest.mark.integration]
APP = "example_app"


def test_rehearsal_passes_on_a_healthy_version_and_records_it(make_env, releases, moto_url):
    from flows.provision import provision_host
    from flows.rehearsal import rehearsal
    block, client, bucket = copy_store(releases, moto_url, ["v1", "v2"])
    env = make_env(2)
    provision_host(app=APP, environment=env.name, version=releases.versions["v1"], store_block=block)
    pids = [check.beam_pid(h) for h in env.fleet.hosts]
    record = rehearsal(app=APP, environment=env.name, store_block=block)
    v2 = releases.versions["v2"]
    assert record["result"] == "ok" and record["probe"]["failed"] == 0 and record["probe"]["sent"] > 50
    stored = json.loads(client.get_object(Bucket=bucket, Key=f"{APP}/{v2}.rehearsal.json")["Body"].read())
    assert stored["result"] == "ok" and stored["flow_run"] == record["flow_run"]
    assert [check.version(h) for h in env.fleet.hosts] == [v2, v2]
    assert [check.beam_pid(h) for h in env.fleet.hosts] == pids


def test_rehearsal_fails_on_a_broken_downgrade_and_leaves_hosts_whole(make_env, releases, moto_url,
                                                                      tmp_path_factory):
    from flows.provision import provision_host
    from flows.rehearsal import RehearsalFailed, rehearsal
    from flows.release import release
    block, client, bucket = copy_store(releases, moto_url, ["v1"])
    bad = release(app_dir=str(checkout(tmp_path_factory, "bad-downgrade")), store_block=block)["version"]
    env = make_env(2)
    provision_host(app=APP, environment=env.name, version=releases.versions["v1"], store_block=block)
    with pytest.raises(RehearsalFailed, match=f"downgrade to {releases.versions['v1']}"):
        rehearsal(app=APP, environment=env.name, store_block=block)
    stored = json.loads(client.get_object(Bucket=bucket, Key=f"{APP}/{bad}.rehearsal.json")["Body"].read())
    assert stored["result"] == "failed" and "crash" in stored["reason"]
    # nothing half-done: every host runs one version, permanently, and answers
    for h in env.fleet.hosts:
        assert check.version(h) == bad
        assert check.state(h)[1] == "map"
    assert env.ssh_rules() == []


def test_production_refuses_an_unrehearsed_version_unless_overridden(make_env, releases):
    from blocks import load_environment
    from flows.deploy import hot_deploy
    from flows.provision import provision_host
    from hotdeploy.rehearsal import Unrehearsed
    env = make_env(2)
    load_environment(env.name).model_copy(update={"requires_rehearsal": True}).save(env.name, overwrite=True)
    v1, v2 = releases.versions["v1"], releases.versions["v2"]
    provision_host(app=APP, environment=env.name, version=v1, store_block=releases.block)
    with pytest.raises(Unrehearsed, match="never rehearsed"):
        hot_deploy(app=APP, environment=env.name, version=v2, store_block=releases.block)
    assert [check.version(h) for h in env.fleet.hosts] == [v1, v1]
    rows = hot_deploy(app=APP, environment=env.name, version=v2, store_block=releases.block,
                      allow_unrehearsed=True)
    assert [r["result"] for r in rows] == ["upgraded", "upgraded"]
    from tests.integration.test_deploy import _latest_table_artifact_description
    assert "UNREHEARSED" in _latest_table_artifact_description(f"hot-deploy-{env.name}")

    # status: read-only, one row per host, and the rule is gone afterwards
    from flows.status import status
    pids = [check.beam_pid(h) for h in env.fleet.hosts]
    rows = status(app=APP, environment=env.name, store_block=releases.block)
    assert [(r["result"], r["from_version"], r["to_version"]) for r in rows] == [("answering", v2, v2)] * 2
    # ...and recorded in the store, with what each host ran before (from the hot_deploy's record)
    import json
    record = json.loads(releases.client.get_object(Bucket=releases.bucket,
                                                   Key=f"{APP}/environments/{env.name}.json")["Body"].read())
    assert record["updated_by"]["flow"] == "status"
    assert [(h["address"], h["running"], h["permanent"], h["previous"]) for h in record["hosts"]] == \
        [(h.address, v2, v2, v1) for h in env.fleet.hosts]
    assert all(f"{v2}:permanent" in r["detail"] and f"{v1}:old" in r["detail"] for r in rows)
    assert [r["pid_after"] for r in rows] == pids
    assert env.ssh_rules() == []


def test_rehearsal_probes_through_ssh_where_the_app_port_is_closed_to_the_deployer(make_env, releases, moto_url):
    from flows.provision import provision_host
    from flows.rehearsal import rehearsal
    block, _, _ = copy_store(releases, moto_url, ["v1", "v2"])
    env = make_env(2, app_port_open=False)
    with pytest.raises(OSError):
        check.version(env.fleet.hosts[0])          # the deployer cannot reach the app port
    provision_host(app=APP, environment=env.name, version=releases.versions["v1"], store_block=block)
    record = rehearsal(app=APP, environment=env.name, store_block=block)
    assert record["result"] == "ok" and record["probe"]["failed"] == 0 and record["probe"]["sent"] > 50, record
    v2 = releases.versions["v2"]
    on_host = [h.run("curl -s http://127.0.0.1:8080/api/public/version").stdout.strip() for h in env.fleet.hosts]
    assert on_host == [v2, v2]
    assert env.ssh_rules() == [], "the probe's rule is revoked too"
