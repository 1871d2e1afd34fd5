"""Where a release lives in the package store (keys relative to the bucket folder).

  <app>/<VSN>.tar.gz            the release tarball, never overwritten
  <app>/<VSN>.tar.gz.sha256     its checksum, `sha256sum` format
  <app>/<VSN>.upgrade.tar.gz    only what a host on the previous version needs
                                (releases/VSN, changed lib/ dirs; hotdeploy/package.py)
  <app>/<VSN>.manifest.json     what was built, from what, how
  <app>/<VSN>.rehearsal.json    the last rehearsal's verdict (rewritten)
  <app>/<VSN>.quarantine.json   why the version failed a canary, a gate, a stability
                                window or an approval: no deploy takes it (rewritten)
  <app>/VERSION                 pointer to the newest release, written last, moved
                                only forward (compare-and-set on its ETag)
  <app>/commits/<commit>.json   which version a git commit was released as (rewritten)
  <app>/environments/<env>.json what each host of an environment ran when a fleet
                                flow last finished there (rewritten)
  <app>/runs/<run>/<shard>.json what each host of a shard of a deploy run ended with,
                                as the shard's worker wrote it for the run (kept)

A version is *published* only when its tarball, checksum and manifest are
all there (the manifest is written after the other two): anything less is an
interrupted publish, ignored by every flow and listed by `status`.

The seed also kept a `latest.tar.gz`; a pointer plus immutable versions means a
deploy can never download a tarball that a concurrent release is replacing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .params import app_name
from .versions import Version



def check_app_name(app: str) -> str:
    """The one rule for a release name (hotdeploy/params.py): it is an S3
    folder, a path on hosts and an atom in the node."""
    return app_name(app)


def tarball_key(app: str, vsn: str) -> str:
    return f"{app}/{vsn}.tar.gz"


def upgrade_package_key(app: str, vsn: str) -> str:
    return f"{app}/{vsn}.upgrade.tar.gz"


def checksum_key(app: str, vsn: str) -> str:
    return f"{app}/{vsn}.tar.gz.sha256"


def manifest_key(app: str, vsn: str) -> str:
    return f"{app}/{vsn}.manifest.json"


def rehearsal_key(app: str, vsn: str) -> str:
    return f"{app}/{vsn}.rehearsal.json"


def quarantine_key(app: str, vsn: str) -> str:
    return f"{app}/{vsn}.quarantine.json"


def pointer_key(app: str) -> str:
    return f"{app}/VERSION"


_COMMIT = re.compile(r"[A-Za-z0-9._-]{1,100}")


def commit_key(app: str, commit: str) -> str:
    """Which version a git commit was released as (ship does not rebuild it)."""
    if not _COMMIT.fullmatch(commit) or commit.startswith("."):
        raise ValueError(f"invalid git commit {commit[:60]!r}: letters, digits, . _ - only")
    return f"{app}/commits/{commit}.json"


def environment_key(app: str, environment: str) -> str:
    return f"{app}/environments/{environment}.json"


_SHARD = re.compile(r"w[0-9]{1,4}-s[0-9]{1,5}")


def shard_key(app: str, run_id: str, shard: str) -> str:
    """Where a shard's worker leaves its hosts' outcomes for the deploy run
    RUN_ID (flow results are not readable across machines; the store is)."""
    if not _SHARD.fullmatch(shard):
        raise ValueError(f"invalid shard label {shard[:40]!r}: w<wave>-s<shard>")
    if not re.fullmatch(r"[0-9a-f-]{36}|local", run_id):
        raise ValueError(f"invalid run id {run_id[:40]!r}")
    return f"{app}/runs/{run_id}/{shard}.json"


_PARTS = {".tar.gz": "tarball", ".tar.gz.sha256": "checksum", ".manifest.json": "manifest"}
_VERSION_OBJECT = re.compile(r"([^/]+?)(\.tar\.gz|\.tar\.gz\.sha256|\.manifest\.json)")


@dataclass(frozen=True)
class Listing:
    published: list[str]                  # tarball, checksum and manifest all there; oldest first
    incomplete: dict[str, list[str]]      # version -> the parts that are missing
    quarantined: tuple[str, ...] = ()     # versions with a quarantine record

    @property
    def taken(self) -> list[str]:
        """Every version with any object: none of them may be published again."""
        return sorted({*self.published, *self.incomplete}, key=Version.parse)


def list_published(keys: list[str]) -> Listing:
    """Sort an app folder's keys into published and incomplete versions
    (names that are not versions are ignored)."""
    parts: dict[str, set[str]] = {}
    quarantined = []
    for key in keys:
        name = key.rsplit("/", 1)[-1]
        if name.endswith(".quarantine.json"):
            try:
                quarantined.append(str(Version.parse(name[:-len(".quarantine.json")])))
            except ValueError:
                pass
            continue
        m = _VERSION_OBJECT.fullmatch(name)
        if not m:
            continue
        try:
            vsn = str(Version.parse(m.group(1)))
        except ValueError:
            continue
        parts.setdefault(vsn, set()).add(_PARTS[m.group(2)])
    order = sorted(parts, key=Version.parse)
    return Listing([v for v in order if len(parts[v]) == 3],
                   {v: sorted(set(_PARTS.values()) - parts[v]) for v in order if len(parts[v]) < 3},
                   tuple(sorted(quarantined, key=Version.parse)))


def versions_in(keys: list[str]) -> list[str]:
    """Published versions among listed keys."""
    return list_published(keys).published


def checksum_line(sha256: str, vsn: str) -> str:
    return f"{sha256}  {vsn}.tar.gz\n"


def parse_checksum(text: str) -> str:
    digest = text.split()[0] if text.split() else ""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"not a sha256 checksum: {text[:80]!r}")
    return digest
