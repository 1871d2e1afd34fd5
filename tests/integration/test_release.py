"""The release flow against the real Docker engine, moto's S3 API and a Prefect server."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from hotdeploy.erlterm import consult
from hotdeploy.versions import Version
from tests.conftest import ROOT
from tests.integration.conftest import snapshot

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine", "prefect_server")]


def _get(client, bucket, key) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def chain(releases):
    return releases.block, releases.client, releases.bucket, releases.summaries


def test_three_releases_are_immutable_versions_with_checksums_and_manifests(chain):
    _, client, bucket, summaries = chain
    v1, v2, v3 = (s["version"] for s in summaries)
    assert Version.parse(v1) < Version.parse(v2) < Version.parse(v3)
    assert _get(client, bucket, "example_app/VERSION").decode() == v3
    for s, prev in zip(summaries, (None, v1, v2)):
        vsn = s["version"]
        tarball = _get(client, bucket, f"example_app/{vsn}.tar.gz")
        digest = hashlib.sha256(tarball).hexdigest()
        assert _get(client, bucket, f"example_app/{vsn}.tar.gz.sha256").decode().split()[0] == digest
        manifest = json.loads(_get(client, bucket, f"example_app/{vsn}.manifest.json"))
        assert manifest["version"] == vsn and manifest["previous"] == prev
        assert manifest["sha256"] == digest and manifest["relup"] is (prev is not None)
        assert manifest["git_commit"].startswith("commit-")
        assert manifest["erts"] and manifest["otp_release"] == "25"


def test_v3_relup_goes_up_from_v2_and_down_to_it_with_generated_instructions(chain):
    _, client, bucket, summaries = chain
    v2, v3 = summaries[1]["version"], summaries[2]["version"]
    tar = tarfile.open(fileobj=io.BytesIO(_get(client, bucket, f"example_app/{v3}.tar.gz")))
    [(vsn, ups, downs)] = consult(tar.extractfile(f"releases/{v3}/relup").read().decode())
    assert vsn == v3 and [u[0] for u in ups] == [v2] and [d[0] for d in downs] == [v2]
    up = ups[0][2]
    # add_module for the new module, code_change on the gen_server, reload of the web module
    assert ("load_object_code", ("example_app", v3, sorted(up[0][1][2]))) == \
        ("load_object_code", ("example_app", v3, sorted(["example_app_counter", "example_app_web",
                                                         "example_app_greeting"])))
    assert ("code_change", "up", [("example_app_counter", [])]) in up
    assert ("load", ("example_app_web", "soft_purge", "soft_purge")) in up
    # the generated appup (relx leaves .appup files out of the tarball) is in the manifest
    manifest = json.loads(_get(client, bucket, f"example_app/{v3}.manifest.json"))
    instrs = manifest["appup"]
    assert "{add_module, example_app_greeting}" in instrs
    assert "{update, example_app_counter, {advanced, []}, soft_purge, soft_purge, []}" in instrs
    assert "{load_module, example_app_web, soft_purge, soft_purge, []}" in instrs
    # unchanged modules get no instruction
    assert not any("example_app_sup" in i or "example_app_app" in i for i in instrs)
    assert len(instrs) == 3
    # the whole appup, up and down, reviewable in the store as release_handler will run it
    [(appup_vsn, up_from, down_to)] = consult(manifest["appups"]["example_app"])
    assert appup_vsn == v3 and [u[0] for u in up_from] == [v2] and [d[0] for d in down_to] == [v2]
    assert ("update", "example_app_counter", ("advanced", []), "soft_purge", "soft_purge", []) in down_to[0][1]


def test_builder_image_is_reused(chain):
    summaries = chain[3]
    assert len({s["builder_image"] for s in summaries}) == 1
    assert not summaries[1]["builder_image_built"] and not summaries[2]["builder_image_built"]


def test_explicit_version_that_exists_is_refused_and_nothing_changes(chain):
    from flows.release import release
    from hotdeploy.versions import InvalidVersion
    block, client, bucket, summaries = chain
    before = snapshot(client, bucket)
    with pytest.raises(InvalidVersion, match="not newer"):
        release(app_dir=str(ROOT / "examples" / "example_app"), store_block=block,
                version=summaries[1]["version"])
    assert snapshot(client, bucket) == before


def test_publishing_over_an_existing_version_fails_and_keeps_the_object(chain):
    from blocks import load_package_store
    from tasks.store import VersionExists, put_new
    block, client, bucket, summaries = chain
    key = f"example_app/{summaries[0]['version']}.tar.gz"
    before = snapshot(client, bucket)
    with pytest.raises(VersionExists, match="never overwritten"):
        put_new(load_package_store(block), key, b"not the release")
    assert snapshot(client, bucket) == before


def test_failing_app_test_fails_release_and_publishes_nothing(chain, example_version):
    from flows.release import release
    from tasks.container import ContainerFailed
    block, client, bucket, _ = chain
    before = snapshot(client, bucket)
    with pytest.raises(ContainerFailed, match=r"tests failed \(exit 1\)[\s\S]*greeting_is_polite"):
        release(app_dir=str(example_version("broken-tests")), store_block=block)
    assert snapshot(client, bucket) == before


def test_corrupt_previous_tarball_is_named_and_nothing_is_published(make_store, example_version):
    from flows.release import release
    from hotdeploy.artifact import ArtifactError
    block, client, bucket = make_store()
    v1 = release(app_dir=str(example_version("v1")), store_block=block)["version"]
    client.put_object(Bucket=bucket, Key=f"example_app/{v1}.tar.gz", Body=b"\x1f\x8b garbage")
    before = snapshot(client, bucket)
    with pytest.raises(ArtifactError, match=f"previous release {v1} in the store is corrupt"):
        release(app_dir=str(example_version("v2")), store_block=block)
    assert snapshot(client, bucket) == before


@pytest.mark.parametrize("first", ["prefect_aws,prefect.utilities.dockerutils", "flows.status", "flows.deploy,blocks"])
def test_a_missing_image_is_caught_whatever_was_imported_first(docker_engine, first):
    """Prefect's lazy `docker` module (prefect_aws imports it) and our
    `import docker.errors` once made two docker.errors: ImageNotFound escaped
    `except docker.errors.ImageNotFound` and the builder image was never
    built. The flows that do not build no longer import prefect_docker."""
    import subprocess
    import sys
    code = ("import importlib, sys\n"
            f"for m in {first.split(',')!r}: importlib.import_module(m)\n"
            "assert 'prefect_docker' not in sys.modules or 'tasks.container' in sys.modules\n"
            "import tasks.container as c\n"
            "try:\n"
            "    c.docker.from_env().images.get('hotdeploy/no-such-image:none')\n"
            "except c.docker.errors.ImageNotFound:\n"
            "    print('caught')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "caught", done.stderr[-2000:]
