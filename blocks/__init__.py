"""Typed configuration, stored as Prefect blocks.

- package store: prefect-aws `S3Bucket` (bucket, folder, `AwsCredentials`);
- container engine: prefect-docker `DockerHost` (defaults to the local engine);
- deploy environment: `DeployEnvironment` (hosts by EC2 tags, SSH, security
  group, runtime config, rollout bounds).
"""
from __future__ import annotations

from prefect_aws import S3Bucket
from prefect_docker import DockerHost

from .environment import DeployEnvironment

DEFAULT_STORE_BLOCK = "hotdeploy-store"


class BlockMissing(LookupError):
    pass


def load_package_store(name: str) -> S3Bucket:
    try:
        return S3Bucket.load(name)
    except ValueError as e:
        raise BlockMissing(
            f"package store block s3-bucket/{name} not found ({e}); create it with "
            "`python -m blocks.local` for a local setup, or see README 'Blocks for AWS'"
        ) from None


def load_environment(name: str) -> DeployEnvironment:
    try:
        return DeployEnvironment.load(name)
    except ValueError as e:
        raise BlockMissing(
            f"environment block hotdeploy-environment/{name} not found ({e}); create it "
            "(see README 'Blocks') or run `python -m blocks.local`"
        ) from None


def load_docker_host(name: str | None) -> DockerHost:
    if not name:
        return DockerHost()
    try:
        return DockerHost.load(name)
    except ValueError as e:
        raise BlockMissing(f"docker host block docker-host/{name} not found ({e})") from None
