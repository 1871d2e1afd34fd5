"""The outside systems failing under a deploy: an S3 endpoint that accepts
and never answers, EC2 gone when the rule is revoked. Real servers only:
a listening socket that never answers, a moto server stopped mid-deploy."""
from __future__ import annotations

import json
import re
import socket
import threading
import time

import pytest

from tests.integration import fleet_checks as check

pytestmark = [pytest.mark.integration]
APP = "example_app"


def test_s3_that_never_answers_fails_the_run_within_30_s_naming_the_store_without_a_traceback(make_env, prefect_server):
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    from flows.deploy import hot_deploy
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    silent.settimeout(0.5)
    port = silent.getsockname()[1]
    asked, done = [], threading.Event()

    def accept() -> None:   # accepts and holds each connection, never reads nor answers
        while not done.is_set():
            try:
                asked.append(silent.accept()[0])
            except (TimeoutError, socket.timeout):
                pass
    listener = threading.Thread(target=accept, daemon=True)
    listener.start()
    creds = AwsCredentials(aws_access_key_id="testing", aws_secret_access_key="testing-secret",
                           region_name="us-east-1",
                           aws_client_parameters=AwsClientParameters(endpoint_url=f"http://127.0.0.1:{port}"))
    S3Bucket(bucket_name="silent", credentials=creds).save("silent-store", overwrite=True)
    env = make_env(1)
    try:
        state = hot_deploy(app=APP, environment=env.name, version="latest", store_block="silent-store",
                           return_state=True)
    finally:
        done.set()
        listener.join()
        for held in asked:
            held.close()
        silent.close()
    assert state.is_failed()
    assert re.match(r"the package store \(S3 bucket silent at http://127.0.0.1:\d+\) did not answer", state.message), \
        state.message
    # The budget, counted rather than timed: each try waits the 10 s read timeout once (botocore does not
    # retry); the task retries after 1 s, and not after 4 s, since a third try would end past 30 s.
    assert len(asked) == 2, f"the silent store was asked {len(asked)} times"
    logs = check.run_logs(state.state_details.flow_run_id)
    assert not [line for line in logs if "Traceback" in line], "a known outage is one line, not a traceback"
    assert env.ssh_rules() == [], "nothing was opened"


def test_s3_and_ec2_lost_after_the_hosts_finished_name_the_open_rule_and_the_next_run_records(
        make_env, releases, moto_url):
    """One moto server is both this environment's EC2 and its store's S3;
    it stops once the uploads began. The hosts finish; the run says what
    they did, that the record is not written and which rule stays open until
    when; the next run, with AWS back, records the hosts and revokes the rule."""
    from moto.server import ThreadedMotoServer

    from flows.deploy import hot_deploy
    from flows.provision import provision_host
    from flows.status import status
    from tests.conftest import _free_port
    from tests.integration.conftest import copy_store_to
    from tests.integration.test_deploy import _latest_table_artifact
    port = _free_port()
    aws = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    aws.start()
    url = f"http://127.0.0.1:{port}"
    block, client, bucket = copy_store_to(releases, url, ["v1", "v2"])
    env = make_env(2, ec2_url=url)
    v1, v2 = releases.versions["v1"], releases.versions["v2"]
    provision_host(app=APP, environment=env.name, version=v1, store_block=block)
    marker = [h.dir / "srv" / APP / "releases" / f".{APP}-{v2}.tar.gz.part" for h in env.fleet.hosts]

    def stop_aws_once_uploads_begin():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(m.exists() for m in marker):
            time.sleep(0.005)
        env.enforcer.stop()          # the firewall keeps the rule it last applied
        aws.stop()
    threading.Thread(target=stop_aws_once_uploads_begin, daemon=True).start()

    state = hot_deploy(app=APP, environment=env.name, version=v2, store_block=block, return_state=True)
    assert state.is_failed()
    message = state.message
    assert message.startswith("2 host(s) upgraded; but "), message
    assert "could not be recorded in the store" in message and "the next fleet flow on it" in message, message
    assert re.search(r"the SSH rule tcp/22 from [0-9./]+ on sg-\w+ could not be revoked \(EC2 \(http://127.0.0.1:"
                     r"\d+\) did not answer: .*\): it stays open until \d{4}-\d\d-\d\d \d\d:\d\d UTC \(its expiry\)",
                     message), message
    summary = _latest_table_artifact(f"hot-deploy-{env.name}")
    assert all(h.name in summary for h in env.fleet.hosts) and "upgraded" in summary, summary
    assert [check.version(h) for h in env.fleet.hosts] == [v2, v2]

    back = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)   # AWS is back (same state)
    back.start()
    try:
        assert len(env.ssh_rules()) == 1, "the rule the run could not revoke"
        status(app=APP, environment=env.name, store_block=block)
        record = json.loads(client.get_object(Bucket=bucket, Key=f"{APP}/environments/{env.name}.json")["Body"].read())
        assert {h["host"]: h["running"] for h in record["hosts"]} == {h.name: v2 for h in env.fleet.hosts}
        assert env.ssh_rules() == [], "the next run on the environment revoked it"
    finally:
        back.stop()


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


def test_a_command_that_ends_before_reading_its_input_says_its_own_status_not_socket_closed(make_env):
    """erl_call that finds no node exits before it reads the program on its
    stdin: what the command said must come back, not a lost-connection error."""
    from blocks import load_environment
    from tasks.remote import Connection, Host
    env = make_env(1)
    host = env.fleet.hosts[0]
    env.ec2.authorize_security_group_ingress(GroupId=env.group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "198.18.0.1/32"}]}])
    time.sleep(0.5)     # the host's nftables follow the group
    conn = Connection(load_environment(env.name), Host("i", host.name, host.address), attempts=3)
    try:
        for _ in range(5):
            done = conn.run("echo 'no node here' >&2; exit 3", stdin="x" * 4_000_000)
            assert (done.exit_code, done.stderr.strip()) == (3, "no node here")
        assert conn.run("cat | wc -c", stdin="y" * 100_000).stdout.strip() == "100000", "input still arrives"
    finally:
        conn.close()
