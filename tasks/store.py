"""The package store: a prefect-aws S3Bucket block (bucket, folder, credentials).

Each task makes one S3 call and retries it, since the network can flake.
Conditional writes (If-None-Match) make a version immutable even when two
releases race; a retried write whose first attempt landed is recognised by
the checksum stored in the object's metadata.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect_aws import S3Bucket

from hotdeploy import layout

from . import aws

S3_RETRIES = dict(retries=3, retry_delay_seconds=[1, 4, 10], cache_policy=NO_CACHE)


class StoreError(RuntimeError):
    pass


class VersionExists(StoreError):
    pass


class MissingObject(StoreError):
    pass


@dataclass
class Package:
    """An upgrade package: only what a host running UPGRADE_FROM lacks."""
    path: Path
    sha256: str
    upgrade_from: str
    unpacked_bytes: int


def _s3_call(fn):
    """Name S3 in transport failures (no answer, refused, timed out): a bare
    botocore error says only an URL. The task's retries still apply."""
    @functools.wraps(fn)
    def call(store: S3Bucket, *args, **kwargs):
        try:
            return fn(store, *args, **kwargs)
        except BotoCoreError as e:
            endpoint = store.credentials.aws_client_parameters.endpoint_url or "AWS"
            raise StoreError(f"the package store (S3 bucket {store.bucket_name} at {endpoint}) did not "
                             f"answer: {e}") from None
    return call


def _client(store: S3Bucket):
    return aws.client(store.credentials, "s3")


def _key(store: S3Bucket, key: str) -> str:
    folder = (store.bucket_folder or "").strip("/")
    return f"{folder}/{key}" if folder else key


def _missing(e: ClientError) -> bool:
    return e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unpacked_size(path: Path) -> int:
    """Bytes a host needs to receive and unpack the package at PATH."""
    import tarfile
    with tarfile.open(path, "r:gz") as tar:
        return path.stat().st_size + sum(m.size for m in tar.getmembers())


@task(**S3_RETRIES)
@_s3_call
def list_versions(store: S3Bucket, app: str) -> list[str]:
    """Every published version of APP, oldest first."""
    client, keys = _client(store), []
    paginator = client.get_paginator("list_objects_v2")
    prefix = _key(store, f"{app}/")
    for page in paginator.paginate(Bucket=store.bucket_name, Prefix=prefix):
        keys += [o["Key"][len(prefix):] for o in page.get("Contents", [])]
    return layout.versions_in(keys)


@task(**S3_RETRIES)
@_s3_call
def read_text(store: S3Bucket, key: str) -> str | None:
    """An object's text, or None when it does not exist."""
    try:
        obj = _client(store).get_object(Bucket=store.bucket_name, Key=_key(store, key))
    except ClientError as e:
        if _missing(e):
            return None
        raise
    return obj["Body"].read().decode()


@task(**S3_RETRIES)
@_s3_call
def download(store: S3Bucket, key: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        _client(store).download_file(store.bucket_name, _key(store, key), str(dest))
    except ClientError as e:
        if _missing(e):
            raise MissingObject(f"s3://{store.bucket_name}/{_key(store, key)} does not exist") from None
        raise
    return dest


@task(**S3_RETRIES)
@_s3_call
def put_new(store: S3Bucket, key: str, body: bytes | Path, content_type: str = "application/octet-stream") -> str:
    """Create KEY; never overwrite it. Returns the sha256 of what is stored."""
    data = body.read_bytes() if isinstance(body, Path) else body
    digest = hashlib.sha256(data).hexdigest()
    client, full = _client(store), _key(store, key)
    try:
        client.put_object(Bucket=store.bucket_name, Key=full, Body=data, IfNoneMatch="*",
                          ContentType=content_type, Metadata={"sha256": digest})
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
            raise
        stored = client.head_object(Bucket=store.bucket_name, Key=full).get("Metadata", {}).get("sha256")
        if stored != digest:
            raise VersionExists(
                f"s3://{store.bucket_name}/{full} already exists with other content; published "
                "objects are never overwritten: release a new version instead"
            ) from None
        # Same bytes: an earlier attempt of this very write landed.
    get_run_logger().info("stored s3://%s/%s (%d bytes)", store.bucket_name, full, len(data))
    return digest


@task(**S3_RETRIES)
@_s3_call
def put_pointer(store: S3Bucket, app: str, vsn: str) -> None:
    """Move APP's VERSION pointer to VSN (the only object ever rewritten)."""
    _client(store).put_object(Bucket=store.bucket_name, Key=_key(store, layout.pointer_key(app)),
                              Body=vsn.encode(), ContentType="text/plain")
    get_run_logger().info("VERSION of %s now names %s", app, vsn)


class UnknownVersion(StoreError):
    pass


@task(**S3_RETRIES)
@_s3_call
def resolve_version(store: S3Bucket, app: str, version: str) -> str:
    """`latest` (the VERSION pointer) or an explicit, valid, published version."""
    from hotdeploy.versions import Version
    layout.check_app_name(app)
    if version == "latest":
        pointer = read_text.fn(store, layout.pointer_key(app))
        if not pointer:
            raise UnknownVersion(f"no release of {app} in s3://{store.bucket_name}: run the release flow first")
        return str(Version.parse(pointer.strip()))
    vsn = str(Version.parse(version))
    if read_text.fn(store, layout.checksum_key(app, vsn)) is None:
        known = list_versions.fn(store, app)
        raise UnknownVersion(f"{app} {vsn} is not in the store (published: {', '.join(known[-5:]) or 'none'})")
    return vsn


@task(**S3_RETRIES)
@_s3_call
def read_manifest(store: S3Bucket, app: str, vsn: str) -> dict:
    import json
    text = read_text.fn(store, layout.manifest_key(app, vsn))
    if text is None:
        raise UnknownVersion(f"{app} {vsn} has no manifest in the store")
    return json.loads(text)


@task(**S3_RETRIES)
@_s3_call
def fetch_release(store: S3Bucket, app: str, vsn: str, expected_sha256: str, dest_dir: Path,
                  upgrade_package: bool = False) -> Path:
    """Download a release tarball (or its upgrade package) and check it
    against its published sha256."""
    key = layout.upgrade_package_key(app, vsn) if upgrade_package else layout.tarball_key(app, vsn)
    dest = download.fn(store, key, dest_dir / key.rsplit("/", 1)[-1])
    actual = sha256_file(dest)
    if actual != expected_sha256:
        what = "upgrade package" if upgrade_package else "tarball"
        raise StoreError(f"{app} {vsn} in the store is corrupt: its {what} has sha256 {actual}, the manifest "
                         f"says {expected_sha256}. Nothing was deployed")
    return dest


@task(**S3_RETRIES)
@_s3_call
def fetch_upgrade_package(store: S3Bucket, app: str, vsn: str, published: dict | None, dest_dir: Path):
    """The upgrade package the manifest lists (checked against its sha256),
    or None: none published, or missing from the store (then every host gets
    the full tarball, with a warning; a corrupt one fails the run)."""
    if not published:
        return None
    try:
        path = fetch_release.fn(store, app, vsn, published["sha256"], dest_dir, upgrade_package=True)
    except MissingObject as e:
        get_run_logger().warning("%s; every host gets the full tarball", e)
        return None
    return Package(path, published["sha256"], published["from"], unpacked_size(path))


@task(**S3_RETRIES)
@_s3_call
def read_rehearsal(store: S3Bucket, app: str, vsn: str) -> dict | None:
    import json
    text = read_text.fn(store, layout.rehearsal_key(app, vsn))
    return json.loads(text) if text else None


@task(**S3_RETRIES)
@_s3_call
def put_rehearsal(store: S3Bucket, app: str, vsn: str, record: dict) -> None:
    """The rehearsal verdict beside the manifest (rewritten by each rehearsal;
    the manifest and tarball stay immutable)."""
    import json
    _client(store).put_object(Bucket=store.bucket_name, Key=_key(store, layout.rehearsal_key(app, vsn)),
                              Body=(json.dumps(record, indent=2) + "\n").encode(),
                              ContentType="application/json")
    get_run_logger().info("rehearsal of %s %s recorded: %s", app, vsn, record.get("result"))
