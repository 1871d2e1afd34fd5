"""Releases follow the fleet, not the pointer: a relup from every version an
environment runs, a rollback per host to what that host ran before."""
from __future__ import annotations

import json
import time

import pytest

from tests.integration import fleet_checks as check
from tests.integration.conftest import checkout, copy_store

pytestmark = [pytest.mark.integration]
APP = "example_app"


def _record(client, bucket, env) -> dict:
    return {h["host"]: h for h in json.loads(client.get_object(
        Bucket=bucket, Key=f"{APP}/environments/{env.name}.json")["Body"].read())["hosts"]}


def test_a_release_upgrades_every_environment_from_what_it_runs(make_env, releases, moto_url, tmp_path_factory):
    """A lags on v1, B moved on to v2 (the pointer): v3's relup goes up from
    both, and hot_deploy v3 works on both, pids unchanged, no request lost.
    Then a rollback with no version takes each host back to what it ran."""
    from flows.deploy import hot_deploy
    from flows.provision import provision_host
    from flows.release import release
    from flows.rollback import rollback
    from tasks.probe import LoadClient
    block, client, bucket = copy_store(releases, moto_url, ["v1", "v2"])
    v1, v2 = releases.versions["v1"], releases.versions["v2"]
    lagging, ahead = make_env(1), make_env(1)
    provision_host(app=APP, environment=lagging.name, version=v1, store_block=block)
    provision_host(app=APP, environment=ahead.name, version=v1, store_block=block)
    hot_deploy(app=APP, environment=ahead.name, version=v2, store_block=block)
    # a publish interrupted before its manifest, the pointer even naming it: ignored by every flow
    from hotdeploy.versions import Version
    cut = Version.parse(v2)
    cut = f"{cut.major}.{cut.minor}.{cut.patch + 1}"
    for suffix in (".tar.gz", ".tar.gz.sha256"):
        client.copy_object(Bucket=bucket, Key=f"{APP}/{cut}{suffix}",
                           CopySource={"Bucket": bucket, "Key": f"{APP}/{v2}{suffix}"})
    client.put_object(Bucket=bucket, Key=f"{APP}/VERSION", Body=cut.encode())

    built = release(app_dir=str(checkout(tmp_path_factory, "v3")), store_block=block, git_commit="commit-v3")
    v3 = built["version"]
    assert built["upgrade_from"] == [v1, v2] and built["left_out"] == {cut: "not a published version in the store"}
    manifest = json.loads(client.get_object(Bucket=bucket, Key=f"{APP}/{v3}.manifest.json")["Body"].read())
    assert manifest["up_from"] == manifest["down_to"] == [v1, v2]
    assert manifest["upgrade_package"]["from"] == v2       # the newest predecessor (the pointer's is incomplete)

    hosts = lagging.fleet.hosts + ahead.fleet.hosts
    pids = [check.beam_pid(h) for h in hosts]
    for h in hosts:
        for _ in range(3):
            check.get(h.address, "/")
    hits = [check.state(h)[0] for h in hosts]
    with LoadClient([h.address for h in hosts], connections=2, max_seconds=240) as load:
        time.sleep(0.3)
        rows = (hot_deploy(app=APP, environment=lagging.name, version=v3, store_block=block) +
                hot_deploy(app=APP, environment=ahead.name, version=v3, store_block=block))
        time.sleep(0.3)
    assert load.stats.sent > 100 and load.stats.failed == 0, load.stats.summary()
    assert [(r["from_version"], r["to_version"], r["result"]) for r in rows] == \
        [(v1, v3, "upgraded"), (v2, v3, "upgraded")]
    assert [check.beam_pid(h) for h in hosts] == pids
    assert [check.version(h) for h in hosts] == [v3, v3]
    assert all(check.state(h)[1] == "map+last_hit" and check.state(h)[0] >= n for h, n in zip(hosts, hits))
    [a] = _record(client, bucket, lagging).values()
    [b] = _record(client, bucket, ahead).values()
    assert (a["running"], a["previous"], b["running"], b["previous"]) == (v3, v1, v3, v2)

    # rollback with no version: each host back to what it ran before v3
    with LoadClient([h.address for h in hosts], connections=2, max_seconds=240) as load:
        rows = (rollback(app=APP, environment=lagging.name, store_block=block) +
                rollback(app=APP, environment=ahead.name, store_block=block))
    assert load.stats.failed == 0, load.stats.summary()
    assert [(r["from_version"], r["to_version"], r["result"]) for r in rows] == \
        [(v3, v1, "downgraded"), (v3, v2, "downgraded")]
    assert [check.version(h) for h in hosts] == [v1, v2]
    assert [check.state(h)[1] for h in hosts] == ["tuple", "map"], "each state converted down to its own shape"
    assert [check.beam_pid(h) for h in hosts] == pids

    # a second rollback has nowhere to go on the lagging host (v1 is its first release): refused, nothing changes
    from flows.fleet import FleetFailed
    with pytest.raises(FleetFailed, match="no earlier release to go back to"):
        rollback(app=APP, environment=lagging.name, store_block=block)
    # status shows what runs, and the interrupted publish as such
    from flows.status import status
    from tests.integration.test_deploy import _latest_artifact
    assert [r["running"] for r in status(app=APP, environment=ahead.name, store_block=block)] == [v2]
    shown = _latest_artifact("store-example-app").data
    assert f"{cut} (missing manifest)" in shown and "incomplete" in shown, shown


def _node_env(host, key: str) -> str:
    """The application env KEY, asked of the running node on the host."""
    return host.run(f"/srv/example_app/bin/example_app eval 'application:get_env(example_app, {key}).'"
                    ).stdout.strip()


def test_a_rollback_brings_back_the_config_of_the_version_it_returns_to(make_env, releases, moto_url):
    from pydantic import SecretStr

    from blocks import load_environment
    from flows.deploy import hot_deploy
    from flows.provision import provision_host
    from flows.rollback import rollback
    block, _, _ = copy_store(releases, moto_url, ["v1", "v2"])
    v1, v2 = releases.versions["v1"], releases.versions["v2"]
    env = make_env(1, runtime_config='[{example_app, [{greeting, "Hi"}]}].\n')
    provision_host(app=APP, environment=env.name, version=v1, store_block=block)
    [host] = env.fleet.hosts
    pid = check.beam_pid(host)
    assert check.get(host.address, "/").startswith("Hi") and _node_env(host, "only_in_v2") == "undefined"

    newer = load_environment(env.name)
    newer.runtime_config = SecretStr('[{example_app, [{greeting, "Hey"}, {only_in_v2, 42}]}].\n')
    newer.save(env.name, overwrite=True)
    [up] = hot_deploy(app=APP, environment=env.name, version=v2, store_block=block)
    assert check.get(host.address, "/").startswith("Hey") and _node_env(host, "only_in_v2").replace(" ", "") == "{ok,42}"

    [down] = rollback(app=APP, environment=env.name, to_version=v1, store_block=block)
    assert down["result"] == "downgraded" and check.version(host) == v1 and check.beam_pid(host) == pid
    assert _node_env(host, "only_in_v2") == "undefined", "the newer config's key is gone with the rollback"
    assert check.get(host.address, "/").startswith("Hi")
    assert up["config"] and down["config"] and up["config"] != down["config"]
    # rolling back again to where the host is: said in the run's final state, not a silent success
    again = rollback(app=APP, environment=env.name, to_version=v1, store_block=block, return_state=True)
    assert again.is_completed() and again.message == f"rollback changed no host: all 1 already run(s) {v1}"
    assert [r["result"] for r in again.result()] == ["already running"]


def test_ship_twice_for_one_commit_releases_it_once(make_env, releases, moto_url, tmp_path_factory):
    import subprocess

    from flows.provision import provision_host
    from flows.ship import ship
    block, client, bucket = copy_store(releases, moto_url, ["v1"])
    repo = checkout(tmp_path_factory, "v2")
    git = ["git", "-C", str(repo), "-c", "user.email=ci@example.com", "-c", "user.name=CI"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "v2"], check=True)
    env = make_env(1)
    provision_host(app=APP, environment=env.name, version=releases.versions["v1"], store_block=block)

    first = ship(app_dir=str(repo), environment=env.name, git_ref="HEAD", store_block=block)
    published = sorted(k for k in (o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
                       if k.endswith(".manifest.json"))
    second = ship(app_dir=str(repo), environment=env.name, git_ref="HEAD", store_block=block)
    assert not first["release"]["reused"] and second["release"]["reused"]
    assert second["release"]["version"] == first["release"]["version"]
    assert sorted(k for k in (o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
                  if k.endswith(".manifest.json")) == published, "one release per commit"
    assert [r["result"] for r in first["deploy"]] == ["upgraded"]
    assert [r["result"] for r in second["deploy"]] == ["already running"]
    assert check.version(env.fleet.hosts[0]) == first["release"]["version"]
