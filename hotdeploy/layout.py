"""Where a release lives in the package store (keys relative to the bucket folder).

  <app>/<VSN>.tar.gz            the release tarball, never overwritten
  <app>/<VSN>.tar.gz.sha256     its checksum, `sha256sum` format
  <app>/<VSN>.upgrade.tar.gz    only what a host on the previous version needs
                                (releases/VSN, changed lib/ dirs; hotdeploy/package.py)
  <app>/<VSN>.manifest.json     what was built, from what, how
  <app>/<VSN>.rehearsal.json    the last rehearsal's verdict (rewritten)
  <app>/VERSION                 pointer to the newest release, written last

The seed also kept a `latest.tar.gz`; a pointer plus immutable versions means a
deploy can never download a tarball that a concurrent release is replacing.
"""
from __future__ import annotations

import re

from .versions import Version

_APP = re.compile(r"[a-z][a-z0-9_]*")
_TARBALL = re.compile(r"(?:.*/)?([^/]+)\.tar\.gz")


def check_app_name(app: str) -> str:
    if not _APP.fullmatch(app or ""):
        raise ValueError(f"invalid application name {app!r}: expected an Erlang atom like example_app")
    return app


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


def pointer_key(app: str) -> str:
    return f"{app}/VERSION"


def versions_in(keys: list[str]) -> list[str]:
    """Published versions among listed keys (names that are not versions are ignored)."""
    found = []
    for key in keys:
        m = _TARBALL.fullmatch(key)
        if m:
            try:
                found.append(str(Version.parse(m.group(1))))
            except ValueError:
                continue
    return sorted(found, key=Version.parse)


def checksum_line(sha256: str, vsn: str) -> str:
    return f"{sha256}  {vsn}.tar.gz\n"


def parse_checksum(text: str) -> str:
    digest = text.split()[0] if text.split() else ""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"not a sha256 checksum: {text[:80]!r}")
    return digest
