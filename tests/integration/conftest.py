from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from tests.conftest import ROOT


def new_store(moto_url: str):
    """A fresh bucket on moto behind a saved S3Bucket block; returns (block name, s3 client, bucket)."""
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    if True:
        name = f"store-{uuid.uuid4().hex[:10]}"
        bucket = f"hotdeploy-{name}"
        creds = AwsCredentials(aws_access_key_id="testing", aws_secret_access_key="testing-secret",
                               region_name="us-east-1",
                               aws_client_parameters=AwsClientParameters(endpoint_url=moto_url))
        client = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing-secret")
        client.create_bucket(Bucket=bucket)
        S3Bucket(bucket_name=bucket, credentials=creds).save(name, overwrite=True)
        return name, client, bucket


@pytest.fixture
def make_store(prefect_server, moto_url):
    return lambda: new_store(moto_url)


def snapshot(client, bucket) -> dict[str, str]:
    """Every object in BUCKET with its ETag: compare two to prove nothing changed."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    return out


def checkout(tmp_path_factory, version: str) -> Path:
    dest = tmp_path_factory.mktemp(f"example-{version}")
    subprocess.run([str(ROOT / "examples" / "checkout-version"), version, str(dest)], check=True)
    return dest


@dataclass
class Released:
    block: str
    client: object
    bucket: str
    versions: dict          # example version name (v1, v2, ...) -> release version
    summaries: list


@pytest.fixture(scope="session")
def releases(docker_engine, prefect_server, moto_url, tmp_path_factory) -> Released:
    """One store with v1 (no relup) -> v2 -> v3 released by the release flow,
    as CI would on three pushes. Shared: release tests read it, deploy tests
    ship from it."""
    from flows.release import release
    block, client, bucket = new_store(moto_url)
    summaries = [release(app_dir=str(checkout(tmp_path_factory, v)), store_block=block,
                         git_commit=f"commit-{v}") for v in ("v1", "v2", "v3")]
    return Released(block, client, bucket, {v: s["version"] for v, s in zip(("v1", "v2", "v3"), summaries)},
                    summaries)


def copy_store(src: Released, moto_url: str, versions: list[str]) -> tuple[str, object, str]:
    """A new store holding copies of SRC's objects for VERSIONS (names), its
    pointer on the last: lets a test add or break releases without touching SRC."""
    return copy_store_to(src, moto_url, versions)


def copy_store_to(src: Released, moto_url: str, versions: list[str]) -> tuple[str, object, str]:
    """copy_store on the S3 at MOTO_URL (another moto server, which a test may stop)."""
    block, client, bucket = new_store(moto_url)
    for name in versions:
        vsn = src.versions[name]
        for suffix in (".tar.gz", ".tar.gz.sha256", ".manifest.json", ".upgrade.tar.gz"):
            if suffix == ".upgrade.tar.gz" and vsn == src.versions["v1"]:
                continue  # a first release has none
            client.copy_object(Bucket=bucket, Key=f"example_app/{vsn}{suffix}",
                               CopySource={"Bucket": src.bucket, "Key": f"example_app/{vsn}{suffix}"})
    client.put_object(Bucket=bucket, Key="example_app/VERSION", Body=src.versions[versions[-1]].encode())
    return block, client, bucket


def _host_range() -> tuple[int, int]:
    """Last octets this session's test hosts may use: HOTDEPLOY_TEST_HOSTS
    (e.g. 110-199) when scripts/test.sh runs two sessions side by side."""
    lo, _, hi = os.environ.get("HOTDEPLOY_TEST_HOSTS", "10-199").partition("-")
    return int(lo), int(hi)


_next_host = itertools.count()


def _host_numbers(size: int) -> int:
    """The first of SIZE consecutive addresses in this session's range; wraps
    around (fleets of earlier tests are gone by then)."""
    lo, hi = _host_range()
    room = hi - lo + 1
    while True:
        offset = next(_next_host) % room
        if offset + size <= room:
            for _ in range(size - 1):
                next(_next_host)
            return lo + offset
RUNTIME_SECRET = f"s3cr3t-{uuid.uuid4().hex}"


@dataclass
class LocalEnv:
    name: str              # DeployEnvironment block name (= Environment tag)
    fleet: object          # localfleet.fleet.Fleet
    ec2: object
    group_id: str
    enforcer: object

    def ssh_rules(self) -> list:
        from hotdeploy.ingress import rules_on_port
        [g] = self.ec2.describe_security_groups(GroupIds=[self.group_id])["SecurityGroups"]
        return rules_on_port(g.get("IpPermissions", []), 22)


@pytest.fixture
def make_env(prefect_server, moto_url):
    """A fleet of namespace hosts registered in moto's EC2, its security group
    enforced by nftables, and a DeployEnvironment block for it."""
    from blocks.environment import DeployEnvironment
    from localfleet.ec2 import register
    from localfleet.fleet import Fleet, GroupEnforcer
    from prefect_aws import AwsCredentials
    from prefect_aws.client_parameters import AwsClientParameters

    made = []

    def make(size: int = 3, ec2_url: str | None = None, app_port_open: bool = True, **overrides) -> LocalEnv:
        """EC2_URL: another moto server for this environment's EC2 (a test may stop it);
        APP_PORT_OPEN false: the group does not open 8080 and the hosts enforce it."""
        url = ec2_url or moto_url
        name = f"t{uuid.uuid4().hex[:6]}"
        first = _host_numbers(size)
        fleet = Fleet(name, size, first=first)
        made.append(fleet)
        fleet.start()
        ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing-secret")
        ec2_fleet = register(ec2, fleet.hosts, environment=name, open_app_port=app_port_open)
        enforcer = GroupEnforcer(ec2, ec2_fleet.group_id, fleet.hosts,
                                 guarded_ports=(22,) if app_port_open else (22, 8080))
        enforcer.start()
        made.append(enforcer)
        creds = AwsCredentials(aws_access_key_id="testing", aws_secret_access_key="testing-secret",
                               region_name="us-east-1",
                               aws_client_parameters=AwsClientParameters(endpoint_url=url))
        fields = dict(environment_tag=name, role_tag="web", aws_credentials=creds,
                      security_group_id=ec2_fleet.group_id, ssh_user="root",
                      ssh_private_key=fleet.deployer_key.read_text(), known_hosts=fleet.known_hosts(),
                      release_root="/srv/example_app", app_port=8080, health_timeout_seconds=15,
                      runtime_config=f'[{{example_app, [{{greeting, "Hello"}}, {{api_token, "{RUNTIME_SECRET}"}}]}}].\n',
                      max_parallel=4, connect_timeout_seconds=3, command_timeout_seconds=20,
                      # all hosts at once and a short soak: a test about waves or the soak says so
                      canary=0, wave_size="100%", health_soak_seconds=1.0)
        fields.update(overrides)
        DeployEnvironment(**fields).save(name, overwrite=True)
        return LocalEnv(name, fleet, ec2, ec2_fleet.group_id, enforcer)

    yield make
    for thing in reversed(made):
        thing.stop()


@contextlib.contextmanager
def process_worker_on(pool: str, log_path: Path, *options: str, env: dict | None = None):
    """A `python -m deployments.worker --pool POOL` (the warm process worker)
    as the README starts one, its output in LOG_PATH, ENV added to its
    environment; stopped as a service manager would (TERM, then KILL)."""
    with open(log_path, "w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "deployments.worker", "--pool", pool, *options], cwd=ROOT,
                                  stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                  start_new_session=True)
        try:
            yield worker
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(30)
