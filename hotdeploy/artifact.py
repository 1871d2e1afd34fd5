"""What a release tarball must hold to be a hot upgrade from PREV to NEW.

Pure checks over the text of files read from the tarball; the task that opens
the tarball lives in tasks/workspace.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .edges import relup_reasons
from .erlterm import Atom, ErlangSyntaxError, consult
from .errors import Refusal


class ArtifactError(Refusal, ValueError):
    pass


@dataclass
class ReleaseFacts:
    version: str
    erts: str
    apps: dict[str, str]
    up_from: list[str] = field(default_factory=list)
    down_to: list[str] = field(default_factory=list)
    up_instructions: list[str] = field(default_factory=list)
    relup_restarts: dict[str, list[str]] = field(default_factory=dict)   # up-from -> why it restarts the emulator


def _fmt(term) -> str:
    if isinstance(term, Atom):
        return str(term)
    if isinstance(term, str):
        return f'"{term}"'
    if isinstance(term, tuple):
        return "{" + ",".join(_fmt(t) for t in term) + "}"
    if isinstance(term, list):
        return "[" + ",".join(_fmt(t) for t in term) + "]"
    return repr(term)


def read_rel(rel_name: str, rel_text: str) -> tuple[str, str, dict[str, str]]:
    try:
        [(tag, (name, vsn), (_erts_tag, erts), apps)] = consult(rel_text)
    except (ErlangSyntaxError, ValueError, TypeError) as e:
        raise ArtifactError(f"{rel_name}.rel is not a release file: {e}") from None
    if tag != "release" or name != rel_name:
        raise ArtifactError(f"{rel_name}.rel names release {name!r}, expected {rel_name!r}")
    return vsn, erts, {str(a[0]): a[1] for a in apps}


def check_release(
    rel_name: str,
    version: str,
    rel_text: str,
    relup_text: str | None,
    previous: list[str],
    previous_erts: dict[str, str],
) -> ReleaseFacts:
    """Raise ArtifactError unless the release is VERSION and, when there are
    previous releases, its relup goes up from exactly PREVIOUS and down to
    them, each on the same ERTS (a hot upgrade cannot replace the emulator)."""
    from .versions import Version
    vsn, erts, apps = read_rel(rel_name, rel_text)
    if vsn != version:
        raise ArtifactError(f"tarball holds release {vsn}, expected {version}")
    facts = ReleaseFacts(vsn, erts, apps)
    if not previous:
        return facts
    if relup_text is None:
        raise ArtifactError(f"tarball has no releases/{version}/relup: it cannot hot-upgrade from "
                            f"{', '.join(previous)}")
    for prev in previous:
        if previous_erts.get(prev) and previous_erts[prev] != erts:
            raise ArtifactError(
                f"ERTS {erts} differs from {previous_erts[prev]} of release {prev}: a hot upgrade "
                "cannot change the emulator; build in an image with the hosts' Erlang"
            )
    try:
        [(relup_vsn, ups, downs)] = consult(relup_text)
    except (ErlangSyntaxError, ValueError, TypeError) as e:
        raise ArtifactError(f"releases/{version}/relup is not a relup: {e}") from None
    try:
        facts.up_from = sorted((u[0] for u in ups), key=Version.parse)
        facts.down_to = sorted((d[0] for d in downs), key=Version.parse)
    except ValueError as e:
        raise ArtifactError(f"releases/{version}/relup names a version that is not one: {e}") from None
    wanted = sorted(previous, key=Version.parse)
    if relup_vsn != version or facts.up_from != wanted or facts.down_to != wanted:
        raise ArtifactError(
            f"relup of {relup_vsn} goes up from {facts.up_from} and down to {facts.down_to}; "
            f"expected exactly {wanted} both ways"
        )
    newest = {u[0]: u[2] for u in ups}[wanted[-1]]
    facts.up_instructions = [_fmt(i) for i in newest]
    facts.relup_restarts = {u[0]: why for u in ups if (why := relup_reasons(u[2]))}
    return facts
