"""The store's integrity against moto's S3 API: only complete publishes
count, the pointer moves only forward, and garbage in the store stops a run
before anything is built or deployed."""
from __future__ import annotations

import pytest
from prefect import flow

from tests.integration.conftest import copy_store, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]
APP = "example_app"


@flow
def _in_a_flow(fn, *args):
    return fn(*args)


def _store(block):
    from blocks import load_package_store
    return load_package_store(block)


def _interrupt_a_publish(client, bucket, src_vsn: str, vsn: str) -> None:
    """What a release killed between its uploads leaves: a tarball and a
    checksum under VSN, no manifest."""
    for suffix in (".tar.gz", ".tar.gz.sha256"):
        client.copy_object(Bucket=bucket, Key=f"{APP}/{vsn}{suffix}",
                           CopySource={"Bucket": bucket, "Key": f"{APP}/{src_vsn}{suffix}"})


def test_an_interrupted_publish_is_ignored_and_named(releases, moto_url):
    from tasks.store import UnknownVersion, list_store, list_versions, resolve_version
    block, client, bucket = copy_store(releases, moto_url, ["v1", "v2"])
    v1, v2 = releases.versions["v1"], releases.versions["v2"]
    _interrupt_a_publish(client, bucket, v2, "2999.101.1")
    store = _store(block)
    listing = _in_a_flow(list_store.fn, store, APP)
    assert listing.published == [v1, v2] and listing.incomplete == {"2999.101.1": ["manifest"]}
    assert _in_a_flow(list_versions, store, APP) == [v1, v2]
    assert _in_a_flow(resolve_version.fn, store, APP, "latest") == v2
    with pytest.raises(UnknownVersion, match=r"2999.101.1 is an interrupted publish \(missing: manifest\)"):
        _in_a_flow(resolve_version.fn, store, APP, "2999.101.1")


def test_racing_releases_never_move_the_pointer_backwards(releases, moto_url):
    """Release A reads the pointer, release B (newer) publishes and moves it,
    then A moves it: A's compare-and-set fails, it sees B's newer version
    there and leaves it. Both versions stay as published."""
    from tasks.store import move_pointer, read_pointer
    block, client, bucket = copy_store(releases, moto_url, ["v1", "v2", "v3"])
    client.put_object(Bucket=bucket, Key=f"{APP}/VERSION", Body=releases.versions["v1"].encode())
    store = _store(block)
    seen_by_a = _in_a_flow(read_pointer.fn, store, APP)
    seen_by_b = _in_a_flow(read_pointer.fn, store, APP)
    objects = {k: v for k, v in snapshot(client, bucket).items() if not k.endswith("VERSION")}
    v2, v3 = releases.versions["v2"], releases.versions["v3"]
    assert _in_a_flow(move_pointer.fn, store, APP, v3, seen_by_b) == v3          # B, newer, first
    assert _in_a_flow(move_pointer.fn, store, APP, v2, seen_by_a) == v3          # A, older, stale read
    assert client.get_object(Bucket=bucket, Key=f"{APP}/VERSION")["Body"].read().decode() == v3
    # A's stale read of an older pointer than its own version: it moves forward
    client.put_object(Bucket=bucket, Key=f"{APP}/VERSION", Body=releases.versions["v1"].encode())
    stale = _in_a_flow(read_pointer.fn, store, APP)
    client.put_object(Bucket=bucket, Key=f"{APP}/VERSION", Body=v2.encode())
    assert _in_a_flow(move_pointer.fn, store, APP, v3, stale) == v3
    assert {k: v for k, v in snapshot(client, bucket).items() if not k.endswith("VERSION")} == objects


GARBAGE = ["1.2.3;rm -rf /", "1.2.3\u00e9\u202e", "", "\n"]


@pytest.mark.parametrize("pointer", GARBAGE)
def test_a_garbage_pointer_stops_release_before_any_build(releases, moto_url, example_version, pointer):
    from flows.release import release
    from tasks.store import BadPointer, UnknownVersion
    block, client, bucket = copy_store(releases, moto_url, ["v1"])
    client.put_object(Bucket=bucket, Key=f"{APP}/VERSION", Body=pointer.encode())
    before = snapshot(client, bucket)
    with pytest.raises(BadPointer, match="not a version: nothing was built or deployed"):
        release(app_dir=str(example_version("v2")), store_block=block)
    assert snapshot(client, bucket) == before
    with pytest.raises((BadPointer, UnknownVersion)):
        from tasks.store import resolve_version
        _in_a_flow(resolve_version.fn, _store(block), APP, "latest")


def test_a_garbage_manifest_deploys_nothing(releases, moto_url, make_env):
    from flows.deploy import hot_deploy
    from hotdeploy.manifest import ManifestError
    import json
    block, client, bucket = copy_store(releases, moto_url, ["v1", "v2"])
    v2 = releases.versions["v2"]
    key = f"{APP}/{v2}.manifest.json"
    manifest = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest | {"up_from": ["1.2.3;rm -rf /"]}))
    from flows.provision import provision_host
    from tests.integration import fleet_checks as check
    env = make_env(1)
    provision_host(app=APP, environment=env.name, version=releases.versions["v1"], store_block=block)
    [host] = env.fleet.hosts
    pid = check.beam_pid(host)
    with pytest.raises(ManifestError, match=r"up_from holds '1.2.3;rm -rf /', not a version"):
        hot_deploy(app=APP, environment=env.name, version=v2, store_block=block)
    assert check.beam_pid(host) == pid and check.version(host) == releases.versions["v1"]
    assert env.ssh_rules() == []
