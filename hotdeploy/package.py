"""The upgrade package: what a host that runs the previous release needs to
hot-upgrade, and nothing else (pure).

A full relx tarball carries ERTS and every OTP library (~9 MB for the
example); a host running the previous release already has all of them but
the applications whose version changed. The upgrade package holds
`releases/NEW/` (rel, relup, boot files, configs), the versioned start script
`bin/<rel>-NEW` (what a restart boots once NEW is permanent) and the `lib/`
directories of the applications new or changed since PREV.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import Refusal


class PackageError(Refusal, ValueError):
    pass


@dataclass(frozen=True)
class UpgradePlan:
    members: list[str]           # tar member names to copy from the full tarball
    libs: list[str]              # lib/<app>-<vsn> directories it carries


def plan_upgrade_package(names: list[str], release: str, version: str, new_apps: dict[str, str],
                         new_erts: str, prev_apps: dict[str, str], prev_erts: str) -> UpgradePlan:
    """The members of the full tarball (NAMES) that go into the upgrade
    package from PREV: refused when PREV's ERTS differs (no hot upgrade
    across emulators)."""
    if new_erts != prev_erts:
        raise PackageError(f"ERTS {new_erts} differs from the previous release's {prev_erts}: no upgrade "
                           "package (a full tarball only)")
    changed = sorted(f"{a}-{v}" for a, v in new_apps.items() if prev_apps.get(a) != v)
    wanted = tuple(f"lib/{d}/" for d in changed) + (f"releases/{version}/",)
    script = f"bin/{release}-{version}"
    members = [n for n in names if n.startswith(wanted) or n == script]
    missing = [d for d in changed if not any(n.startswith(f"lib/{d}/") for n in names)]
    if missing:
        raise PackageError(f"the full tarball lacks lib/ of {', '.join(missing)}")
    if not any(n.startswith(f"releases/{version}/") for n in names):
        raise PackageError(f"the full tarball lacks releases/{version}/")
    return UpgradePlan(members, changed)
