"""The manifest published beside each release tarball."""
from __future__ import annotations

import json
from datetime import datetime

from .artifact import ReleaseFacts


def build_manifest(*, release: str, facts: ReleaseFacts, previous: str | None, sha256: str,
                   size: int, built_at: datetime, otp_release: str | None, git_commit: str | None,
                   appup: list[str], builder_image: str, upgrade_package: dict | None = None) -> dict:
    return {
        "app": release,
        "version": facts.version,
        "previous": previous,
        "relup": previous is not None,
        "up_from": facts.up_from,
        "down_to": facts.down_to,
        "sha256": sha256,
        "size": size,
        "built_at": built_at.isoformat(timespec="seconds"),
        "erts": facts.erts,
        "otp_release": otp_release,
        "applications": facts.apps,
        "git_commit": git_commit,
        "appup": appup,
        "relup_up_instructions": facts.up_instructions,
        "builder_image": builder_image,
        # {"from", "sha256", "size", "libs"}: the package for hosts on `from`; None: full tarball only
        "upgrade_package": upgrade_package,
    }


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
