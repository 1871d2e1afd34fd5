"""The manifest published beside each release tarball."""
from __future__ import annotations

import json
import re
from datetime import datetime

from .artifact import ReleaseFacts
from .errors import Refusal


def build_manifest(*, release: str, facts: ReleaseFacts, previous: str | None, sha256: str, kind: str = "rebar3",
                   size: int, built_at: datetime, otp_release: str | None, git_commit: str | None,
                   appup: list[str], builder_image: str, upgrade_package: dict | None = None,
                   left_out: dict[str, str] | None = None, supervisors: list[dict] | None = None,
                   edges: dict | None = None, appups: dict[str, str] | None = None) -> dict:
    edges = edges or {}
    # only hot edges go through the relup, up and down; the others restart
    hot = [v for v in facts.up_from if v not in edges or edges[v].strategy == "hot"]
    return {
        "app": release,
        "version": facts.version,
        "kind": kind,                      # rebar3 | mix: how it was built (and how systemd starts it)
        "previous": previous,
        "relup": previous is not None,
        "up_from": hot,                    # every version the relup takes hot, up...
        "down_to": [v for v in facts.down_to if v in hot],   # ...and down (the same set)
        # every predecessor the build considered: {"strategy": "hot"|"restart", "reasons": [...]}
        "edges": {v: e.as_manifest() for v, e in edges.items()},
        "left_out": left_out or {},        # versions in use with no relup from them, and why
        "sha256": sha256,
        "size": size,
        "built_at": built_at.isoformat(timespec="seconds"),
        "erts": facts.erts,
        "otp_release": otp_release,
        "elixir": facts.apps.get("elixir"),   # the Elixir the release carries (None: an Erlang one)
        "applications": facts.apps,
        "git_commit": git_commit,
        "appup": appup,
        # {app: the .appup file the build generated, up and down}: what release_handler runs,
        # reviewable in the store (an app whose project ships its own appup is not listed)
        "appups": appups or {},
        "relup_up_instructions": facts.up_instructions,
        "builder_image": builder_image,
        # {"from", "sha256", "size", "libs"}: the package for hosts on `from`; None: full tarball only
        "upgrade_package": upgrade_package,
        # [{"sup": module, "ids": [child id as Erlang term text]}]: what each supervisor of the
        # release declares (evaluated in the builder); the node holds its tree to it
        "supervisors": supervisors or [],
    }


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


# A module name as the node will make it an atom: Erlang's plain ones and
# Elixir's 'Elixir.Foo.Bar'.
ATOM_TEXT = re.compile(r"[a-z][A-Za-z0-9_@]{0,120}|Elixir(\.[A-Z][A-Za-z0-9_]{0,60}){1,8}")


class ManifestError(Refusal, ValueError):
    pass


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_manifest(app: str, vsn: str, manifest) -> dict:
    """MANIFEST, read from the store for APP VSN, with every value a flow
    acts on checked: versions end up in S3 keys, paths and remote commands,
    so a manifest holding anything else is refused, not used."""
    from .versions import InvalidVersion, Version

    def bad(field: str, why: str) -> ManifestError:
        return ManifestError(f"the manifest of {app} {vsn} in the store is invalid: {field} {why}; nothing "
                             "was built or deployed. Publish a new version (published objects are never "
                             "rewritten)")

    def version(field: str, value) -> str:
        try:
            return str(Version.parse(value))
        except InvalidVersion:
            raise bad(field, f"holds {_shown(value)}, not a version") from None

    def versions(field: str, value) -> list[str]:
        if not isinstance(value, list):
            raise bad(field, f"holds {_shown(value)}, not a list of versions")
        return [version(field, v) for v in value]

    def sha256(field: str, value) -> str:
        if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
            raise bad(field, f"holds {_shown(value)}, not a sha256")
        return value

    if not isinstance(manifest, dict):
        raise bad("", f"is {_shown(manifest)}, not a JSON object")
    if manifest.get("app") != app:
        raise bad("app", f"names {_shown(manifest.get('app'))}")
    if version("version", manifest.get("version")) != vsn:
        raise bad("version", f"names {_shown(manifest.get('version'))}")
    if manifest.get("previous") is not None:
        version("previous", manifest["previous"])
    versions("up_from", manifest.get("up_from", []))
    edges = manifest.get("edges", {})
    if not (isinstance(edges, dict) and all(isinstance(e, dict) and e.get("strategy") in ("hot", "restart")
                                           and isinstance(e.get("reasons", []), list) for e in edges.values())):
        raise bad("edges", f"holds {_shown(edges)}, not {{version: {{strategy, reasons}}}}")
    versions("edges", list(edges))
    versions("down_to", manifest.get("down_to", []))
    sha256("sha256", manifest.get("sha256"))
    sups = manifest.get("supervisors", [])
    if not (isinstance(sups, list) and all(
            isinstance(s, dict) and isinstance(s.get("sup"), str) and ATOM_TEXT.fullmatch(s["sup"])
            and isinstance(s.get("ids"), list) and all(isinstance(i, str) and 0 < len(i) <= 200 for i in s["ids"])
            for s in sups)):
        raise bad("supervisors", f"holds {_shown(sups)}, not a list of {{sup, ids}}")
    package = manifest.get("upgrade_package")
    if package is not None:
        if not isinstance(package, dict):
            raise bad("upgrade_package", f"holds {_shown(package)}")
        version("upgrade_package.from", package.get("from"))
        sha256("upgrade_package.sha256", package.get("sha256"))
    return manifest
