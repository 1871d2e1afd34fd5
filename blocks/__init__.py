"""Typed configuration, stored as Prefect blocks.

- package store: prefect-aws `S3Bucket` (bucket, folder, `AwsCredentials`);
- container engine: prefect-docker `DockerHost` (defaults to the local engine);
- deploy environment: `DeployEnvironment` (hosts by EC2 tags, SSH, security
  group, runtime config, rollout bounds).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from prefect_aws import S3Bucket

from hotdeploy.errors import Refusal

from .environment import DeployEnvironment

if TYPE_CHECKING:
    from prefect_docker import DockerHost

DEFAULT_STORE_BLOCK = "hotdeploy-store"


class BlockMissing(Refusal, LookupError):
    pass


def _load(cls, slug: str, name: str, how: str):
    try:
        return cls.load(name)
    except ValueError as e:
        raise BlockMissing(f"{slug} block {slug}/{name} not found ({e}); {how}") from None


def load_package_store(name: str) -> S3Bucket:
    return _load(S3Bucket, "s3-bucket", name, "create it with `python -m blocks.local` for a local setup, "
                                              "or see docs/blocks.md")


def load_environment(name: str) -> DeployEnvironment:
    return _load(DeployEnvironment, "hotdeploy-environment", name,
                 "create it (see docs/blocks.md) or run `python -m blocks.local`")


def load_docker_host(name: str | None) -> DockerHost:
    # prefect_docker (docker-py, 0.2 s) only for the flows that build: the
    # others (deploy, status, ...) start that much sooner in a worker's process.
    # Imported before docker.errors, as tasks/container.py says why.
    from prefect_docker import DockerHost
    return _load(DockerHost, "docker-host", name, "create it or leave the parameter empty") if name else DockerHost()


def list_environments() -> list[str]:
    """The names of every hotdeploy-environment block (ask Prefect)."""
    from prefect.client.orchestration import get_client
    with get_client(sync_client=True) as client:
        docs = client.read_block_documents_by_type("hotdeploy-environment", include_secrets=False)
    return sorted(d.name for d in docs if d.name and not d.is_anonymous)
