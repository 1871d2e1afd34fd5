"""The package store: a prefect-aws S3Bucket block (bucket, folder, credentials).

Each task makes one S3 call and retries it, since the network can flake.
Conditional writes (If-None-Match) make a version immutable even when two
releases race; a retried write whose first attempt landed is recognised by
the checksum stored in the object's metadata.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError
from prefect import get_run_logger, task
from prefect_aws import S3Bucket

from hotdeploy import layout
from hotdeploy.errors import Outage, Refusal, Verdict
from hotdeploy.hostplan import Footprint

from . import aws
from .retry import retrying
from .threads import together

S3_RETRIES = retrying()


class StoreError(RuntimeError):
    pass


class VersionExists(Refusal, StoreError):
    pass


class MissingObject(Verdict, StoreError):
    pass


class StoreUnreachable(Outage, StoreError):
    pass


@dataclass
class Package:
    """An upgrade package: only what a host running UPGRADE_FROM lacks."""
    path: Path
    sha256: str
    upgrade_from: str
    footprint: Footprint


_s3_call = aws.naming(StoreUnreachable, lambda store: f"the package store (S3 bucket {store.bucket_name} at "
                                                     f"{aws.endpoint(store.credentials)})")


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


def footprint(path: Path) -> Footprint:
    """What the package at PATH takes on a host: itself, and what it unpacks."""
    import tarfile
    with tarfile.open(path, "r:gz") as tar:
        members = tar.getmembers()
    return Footprint(path.stat().st_size, tuple(m.size for m in members if m.isfile()),
                     sum(1 for m in members if m.isdir()))


@task(**S3_RETRIES)
@_s3_call
def list_store(store: S3Bucket, app: str) -> layout.Listing:
    """APP's published versions (oldest first) and interrupted publishes."""
    client, keys = _client(store), []
    paginator = client.get_paginator("list_objects_v2")
    prefix = _key(store, f"{app}/")
    for page in paginator.paginate(Bucket=store.bucket_name, Prefix=prefix):
        keys += [o["Key"][len(prefix):] for o in page.get("Contents", [])]
    return layout.list_published(keys)


def list_versions(store: S3Bucket, app: str) -> list[str]:
    """Every published version of APP, oldest first."""
    return list_store(store, app).published


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


class BadPointer(Refusal, StoreError):
    pass


@dataclass(frozen=True)
class Pointer:
    version: str | None      # None: no release yet
    etag: str | None         # what a compare-and-set move must still find


def _pointer_version(store: S3Bucket, app: str, text: str) -> str:
    from hotdeploy.versions import InvalidVersion, Version
    try:
        return str(Version.parse(text.strip()))
    except InvalidVersion:
        shown = repr(text.strip()) if len(text) <= 60 else repr(text.strip()[:57] + "...")
        raise BadPointer(f"the VERSION pointer of {app} in s3://{store.bucket_name} holds {shown}, not a "
                         "version: nothing was built or deployed. Write a published version into it (status "
                         "lists them) or delete it") from None


@task(**S3_RETRIES)
@_s3_call
def read_pointer(store: S3Bucket, app: str) -> Pointer:
    """APP's VERSION pointer, validated, with its ETag."""
    try:
        obj = _client(store).get_object(Bucket=store.bucket_name, Key=_key(store, layout.pointer_key(app)))
    except ClientError as e:
        if _missing(e):
            return Pointer(None, None)
        raise
    return Pointer(_pointer_version(store, app, obj["Body"].read().decode(errors="replace")), obj["ETag"])


def _precondition_failed(e: ClientError) -> bool:
    return e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict")


@task(**S3_RETRIES)
@_s3_call
def move_pointer(store: S3Bucket, app: str, vsn: str, read: Pointer) -> str:
    """Move APP's VERSION pointer to VSN by compare-and-set: only if it still
    holds what READ saw (If-Match on its ETag; If-None-Match when there was
    none). When another release moved it meanwhile, it moves only forward.
    Returns the version the pointer names afterwards."""
    from hotdeploy.versions import Version
    log, client, key = get_run_logger(), _client(store), _key(store, layout.pointer_key(app))
    for _ in range(5):
        condition = {"IfMatch": read.etag} if read.etag else {"IfNoneMatch": "*"}
        try:
            client.put_object(Bucket=store.bucket_name, Key=key, Body=vsn.encode(), ContentType="text/plain",
                              **condition)
            log.info("VERSION of %s now names %s", app, vsn)
            return vsn
        except ClientError as e:
            if not _precondition_failed(e):
                raise
        read = read_pointer.fn(store, app)
        if read.version == vsn:   # an earlier attempt of this very move landed
            return vsn
        if read.version is not None and Version.parse(read.version) >= Version.parse(vsn):
            log.warning("another release moved the VERSION pointer of %s to %s meanwhile: it stays there "
                        "(never moved backwards); %s is published and can be deployed by name", app,
                        read.version, vsn)
            return read.version
        log.info("the VERSION pointer of %s moved to %s meanwhile (older than %s): trying again", app,
                 read.version, vsn)
    raise StoreError(f"the VERSION pointer of {app} kept moving under this release; {vsn} is published, "
                     "the pointer was not moved")


class UnknownVersion(Refusal, StoreError):
    pass


def _not_published(app: str, vsn: str, listing: layout.Listing) -> str:
    if vsn in listing.incomplete:
        return (f"{app} {vsn} is an interrupted publish (missing: {', '.join(listing.incomplete[vsn])}): "
                "it is ignored; deploy a published version")
    return f"{app} {vsn} is not in the store (published: {', '.join(listing.published[-5:]) or 'none'})"


@task(**S3_RETRIES)
@_s3_call
def resolve_version(store: S3Bucket, app: str, version: str) -> str:
    """`latest` (the VERSION pointer) or an explicit, valid, published version."""
    vsn = named_version(store, app, version)
    check_published(app, vsn, version, list_store.fn(store, app))
    return vsn


def named_version(store: S3Bucket, app: str, version: str) -> str:
    """The version VERSION names: the VERSION pointer's for `latest` (one
    read), else VERSION itself, checked. Not yet known to be published."""
    from hotdeploy.versions import Version
    layout.check_app_name(app)
    if version != "latest":
        return str(Version.parse(version))
    vsn = read_pointer.fn(store, app).version
    if vsn is None:
        raise UnknownVersion(f"no release of {app} in s3://{store.bucket_name}: run the release flow first")
    return vsn


def check_published(app: str, vsn: str, version: str, listing: layout.Listing) -> None:
    if vsn not in listing.published:
        raise UnknownVersion(("the VERSION pointer names " if version == "latest" else "")
                             + _not_published(app, vsn, listing))


@task(**S3_RETRIES)
@_s3_call
def read_manifest(store: S3Bucket, app: str, vsn: str) -> dict:
    """VSN's manifest, every value a flow acts on checked (check_manifest)."""
    import json

    from hotdeploy.manifest import ManifestError, check_manifest
    text = read_text.fn(store, layout.manifest_key(app, vsn))
    if text is None:
        raise UnknownVersion(f"{app} {vsn} has no manifest in the store")
    try:
        manifest = json.loads(text)
    except ValueError:
        raise ManifestError(f"the manifest of {app} {vsn} in the store is not JSON; nothing was built or "
                            "deployed") from None
    return check_manifest(app, vsn, manifest)


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


_fetched: dict[tuple, tuple[Path, Footprint]] = {}
_fetching = threading.Lock()


@dataclass(frozen=True)
class TarballSource:
    """A release's full tarball in the store, fetched, checked and measured
    on first need, once per process: a deploy whose hosts all take the
    upgrade package never fetches it (tens of MB with ERTS)."""
    store: S3Bucket
    app: str
    version: str
    sha256: str
    dest_dir: Path

    def _get(self) -> tuple[Path, Footprint]:
        key = (self.store.bucket_name, self.store.bucket_folder, self.app, self.version, self.sha256,
               str(self.dest_dir))
        with _fetching:   # one download however many hosts need it at once; a failed one is tried again
            if key not in _fetched or not _fetched[key][0].exists():   # gone with its run's directory
                path = fetch_release(self.store, self.app, self.version, self.sha256, self.dest_dir)
                _fetched[key] = (path, footprint(path))
                get_run_logger().info("fetched the full tarball of %s %s (%d bytes) for the hosts that need it",
                                      self.app, self.version, path.stat().st_size)
            return _fetched[key]

    def path(self) -> Path:
        return self._get()[0]

    def footprint(self) -> Footprint:
        return self._get()[1]


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
    return Package(path, published["sha256"], published["from"], footprint(path))


@task(**S3_RETRIES)
@_s3_call
def read_rehearsal(store: S3Bucket, app: str, vsn: str) -> dict | None:
    import json
    text = read_text.fn(store, layout.rehearsal_key(app, vsn))
    return json.loads(text) if text else None


@task(**S3_RETRIES)
@_s3_call
def read_quarantine(store: S3Bucket, app: str, vsn: str) -> dict | None:
    import json
    text = read_text.fn(store, layout.quarantine_key(app, vsn))
    try:
        found = json.loads(text) if text else None
    except ValueError:
        return {"reason": "a quarantine record that is not JSON"}
    return found if isinstance(found, dict) or found is None else {"reason": "a quarantine record that is not an object"}


@task(**S3_RETRIES)
@_s3_call
def put_quarantine(store: S3Bucket, app: str, vsn: str, record: dict) -> None:
    """Why VSN must not be deployed again (rewritten by a later failure)."""
    import json
    _client(store).put_object(Bucket=store.bucket_name, Key=_key(store, layout.quarantine_key(app, vsn)),
                              Body=(json.dumps(record, indent=2) + "\n").encode(), ContentType="application/json")
    get_run_logger().warning("%s %s quarantined: %s", app, vsn, record.get("reason"))


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


@task(**S3_RETRIES)
@_s3_call
def put_text(store: S3Bucket, key: str, text: str) -> None:
    """Write a small rewritable object (an index, never a release's own object)."""
    _client(store).put_object(Bucket=store.bucket_name, Key=_key(store, key), Body=text.encode(),
                              ContentType="application/json")


@task(**S3_RETRIES)
@_s3_call
def read_environment_records(store: S3Bucket, app: str) -> dict[str, dict]:
    """Every environment record of APP (environment -> record); one that is
    not JSON is left out with a warning (the next fleet flow rewrites it)."""
    import json
    client, prefix, records = _client(store), _key(store, f"{app}/environments/"), {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket_name, Prefix=prefix):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(prefix):]
            if not name.endswith(".json"):
                continue
            body = client.get_object(Bucket=store.bucket_name, Key=obj["Key"])["Body"].read()
            try:
                record = json.loads(body)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                get_run_logger().warning("ignoring the environment record %s: %s", obj["Key"], e)
                continue
            records[name[:-len(".json")]] = record
    return records


@task(**S3_RETRIES)
@_s3_call
def record_environment(store: S3Bucket, app: str, environment: str, flow: str, run_id: str, at: str,
                       seen: list[dict], whole_fleet: bool) -> dict:
    """Rewrite ENVIRONMENT's record from what a fleet flow's hosts answered
    (SEEN), merged with the last record (hotdeploy/fleetstate.py: hosts it
    could not read keep what was known): read and write in one task run,
    retried whole, under the environment's lock."""
    import json
    from hotdeploy.fleetstate import record_of
    log, key = get_run_logger(), layout.environment_key(app, environment)
    text = read_text.fn(store, key)
    before = environment_record(text)
    if text and not before:
        log.warning("the environment record %s was not a JSON object: rewritten from this run alone", key)
    record = record_of(app, environment, flow, run_id, at, seen, before or None, whole_fleet)
    _client(store).put_object(Bucket=store.bucket_name, Key=_key(store, key),
                              Body=(json.dumps(record, indent=1, sort_keys=True) + "\n").encode(),
                              ContentType="application/json")
    running: dict[str, list[str]] = {}
    for h in record.get("hosts", []):
        running.setdefault(str(h.get("running")), []).append(h["host"])
    log.info("recorded what runs on %s: %s", environment, "; ".join(
        f"{vsn} on {len(hosts)} host{'s' if len(hosts) > 1 else ''} ({', '.join(hosts[:8])}"
        f"{f' and {len(hosts) - 8} more' if len(hosts) > 8 else ''})" for vsn, hosts in running.items()) or "no host")
    return record


@task(**S3_RETRIES)
@_s3_call
def put_shard_outcomes(store: S3Bucket, app: str, run_id: str, shard: str, rows: list[dict]) -> None:
    """Leave a shard's per-host outcomes for the deploy run RUN_ID, which
    may run on another machine than this shard."""
    import json
    _client(store).put_object(Bucket=store.bucket_name, Key=_key(store, layout.shard_key(app, run_id, shard)),
                              Body=(json.dumps(rows, sort_keys=True) + "\n").encode(), ContentType="application/json")


def read_shard_outcomes(store: S3Bucket, app: str, run_id: str, shard: str) -> list[dict] | None:
    """A shard's per-host outcomes, or None when its run left none. A plain
    call: the caller's task retries whole."""
    import json
    text = read_text.fn(store, layout.shard_key(app, run_id, shard))
    if text is None:
        return None
    rows = json.loads(text)
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("host"), str) for r in rows):
        raise ValueError(f"the outcomes of shard {shard} of run {run_id} are not a list of host rows")
    return rows


def environment_record(text: str | None) -> dict:
    """An environment record's text as a dict (empty when there is none or
    it is not a JSON object: the next fleet flow rewrites it)."""
    import json
    try:
        record = json.loads(text) if text else {}
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


@dataclass(frozen=True)
class DeployInputs:
    """What a deploy reads from the store before it touches a host."""
    version: str                 # resolved: never `latest`
    manifest: dict               # checked (check_manifest)
    rehearsal: dict | None       # None: not asked for, or never rehearsed
    quarantine: dict | None      # None: not quarantined
    record: dict                 # what the environment's last fleet flow saw


@task(**S3_RETRIES)
@_s3_call
def read_deploy_inputs(store: S3Bucket, app: str, version: str, environment: str, rehearsal: bool) -> DeployInputs:
    """VERSION resolved, its manifest, its quarantine record, its rehearsal
    record (when REHEARSAL) and ENVIRONMENT's record: small reads, one task
    run (each costs the server), retried whole. Once the version is named,
    the reads go out together: one round trip to S3, not five."""
    vsn = named_version(store, app, version)
    reads = {"listing": lambda: list_store.fn(store, app),
             "manifest": lambda: read_manifest.fn(store, app, vsn),
             "rehearsal": lambda: read_rehearsal.fn(store, app, vsn) if rehearsal else None,
             "quarantine": lambda: read_quarantine.fn(store, app, vsn),
             "record": lambda: environment_record(read_text.fn(store, layout.environment_key(app, environment)))}
    got = together(reads)
    check_published(app, vsn, version, got["listing"]())   # its refusal before a missing manifest's
    return DeployInputs(vsn, got["manifest"](), got["rehearsal"](), got["quarantine"](), got["record"]())
