"""Releases follow the fleet, not the pointer: a relup from every version an
environment runs."""
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
    both, and hot_deploy v3 works on both, pids unchanged, no request lost."""
    from flows.deploy import hot_deploy
    from flows.provision import provision_host
    from flows.release import release
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

    # status shows what runs, and the interrupted publish as such
    from flows.status import status
    from tests.integration.test_deploy import _latest_artifact
    assert [r["running"] for r in status(app=APP, environment=ahead.name, store_block=block)] == [v2]
    shown = _latest_artifact("store-example-app").data
    assert f"{cut} (missing manifest)" in shown and "incomplete" in shown, shown


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
