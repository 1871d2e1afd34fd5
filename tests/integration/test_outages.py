"""The outside systems failing under a deploy: an S3 endpoint that accepts
and never answers, EC2 gone when the rule is revoked. Real servers only:
a listening socket that never answers, a moto server stopped mid-deploy."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.integration import fleet_checks as check

pytestmark = [pytest.mark.integration]
APP = "example_app"


def test_s3_that_never_answers_fails_the_flow_in_bounded_time_naming_s3(make_env, prefect_server):
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    from flows.deploy import hot_deploy
    from tasks.store import StoreError
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)           # accepts (the kernel does), never reads nor answers
    port = silent.getsockname()[1]
    creds = AwsCredentials(aws_access_key_id="testing", aws_secret_access_key="testing-secret",
                           region_name="us-east-1",
                           aws_client_parameters=AwsClientParameters(endpoint_url=f"http://127.0.0.1:{port}"))
    S3Bucket(bucket_name="silent", credentials=creds).save("silent-store", overwrite=True)
    env = make_env(1)
    start = time.monotonic()
    try:
        with pytest.raises(StoreError, match=r"package store \(S3 bucket silent at http://127.0.0.1:\d+\) did not answer"):
            hot_deploy(app=APP, environment=env.name, version="latest", store_block="silent-store")
    finally:
        silent.close()
    assert time.monotonic() - start < 120, "bounded: timeouts and retries, not minutes of silence"
    assert env.ssh_rules() == [], "nothing was opened"


def test_ec2_gone_at_revoke_still_leaves_the_per_host_summary(make_env, releases):
    from moto.server import ThreadedMotoServer

    from flows.deploy import hot_deploy
    from flows.provision import provision_host
    from tests.conftest import _free_port
    from tests.integration.test_deploy import _latest_table_artifact
    ec2_server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    ec2_server.start()
    host, port = ec2_server.get_host_and_port()
    env = make_env(2, ec2_url=f"http://{host}:{port}")
    v1, v2 = releases.versions["v1"], releases.versions["v2"]
    provision_host(app=APP, environment=env.name, version=v1, store_block=releases.block)
    marker = [h.dir / "srv" / APP / "releases" / f".{APP}-{v2}.tar.gz.part" for h in env.fleet.hosts]

    def stop_ec2_once_uploads_begin():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(m.exists() for m in marker):
            time.sleep(0.005)
        env.enforcer.stop()          # the firewall keeps the rule it last applied
        ec2_server.stop()
    threading.Thread(target=stop_ec2_once_uploads_begin, daemon=True).start()

    with pytest.raises(Exception) as failure:
        hot_deploy(app=APP, environment=env.name, version=v2, store_block=releases.block)
    assert "Could not connect" in str(failure.value) or "did not answer" in str(failure.value) \
        or "Connection" in str(failure.value), str(failure.value)
    summary = _latest_table_artifact(f"hot-deploy-{env.name}")
    assert all(h.name in summary for h in env.fleet.hosts) and "upgraded" in summary, summary
    assert [check.version(h) for h in env.fleet.hosts] == [v2, v2]


def test_an_upgrade_package_missing_from_the_store_means_the_full_tarball(make_env, releases, moto_url):
    from flows.deploy import hot_deploy
    from flows.provision import provision_host
    from tests.integration.conftest import copy_store
    block, client, bucket = copy_store(releases, moto_url, ["v1", "v2"])
    v1, v2 = releases.versions["v1"], releases.versions["v2"]
    client.delete_object(Bucket=bucket, Key=f"{APP}/{v2}.upgrade.tar.gz")
    env = make_env(1)
    provision_host(app=APP, environment=env.name, version=v1, store_block=block)
    [row] = hot_deploy(app=APP, environment=env.name, version=v2, store_block=block)
    assert row["result"] == "upgraded" and row["sent_bytes"] > 1_000_000, row
    assert check.version(env.fleet.hosts[0]) == v2
