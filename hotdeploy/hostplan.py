"""What to do with one host, given which releases its node knows (pure).

`bin/<rel> versions` prints `* VSN<TAB>permanent|current|old|unpacked`. The
version that runs is the `current` one if any, else the `permanent` one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class NodeDown(RuntimeError):
    pass


@dataclass(frozen=True)
class HostReleases:
    statuses: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> str | None:
        for status in ("current", "permanent"):
            for vsn, s in self.statuses.items():
                if s == status:
                    return vsn
        return None

    @property
    def permanent(self) -> str | None:
        return next((v for v, s in self.statuses.items() if s == "permanent"), None)


def parse_versions(output: str) -> HostReleases:
    if "not running" in output or "Node is not" in output:
        raise NodeDown(output.strip().splitlines()[-1] if output.strip() else "node is not running")
    statuses = {}
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("*"):
            parts = line[1:].split()
            if len(parts) == 2:
                statuses[parts[0]] = parts[1]
    if not statuses:
        raise NodeDown(f"no release listed by `versions`: {output.strip()[:200]!r}")
    return HostReleases(statuses)


class Action(str, Enum):
    SKIP = "skip"                    # already running the target, permanently
    FINISH = "finish"                # target installed but not permanent: gate, then make permanent
    INSTALL = "install"              # push (unless present), install, gate, make permanent
    REFUSE = "refuse"                # this release cannot hot-upgrade what runs here


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    running: str | None
    needs_transfer: bool = False


def decide_upgrade(host: HostReleases, target: str, up_from: list[str], down_to: list[str] | None = None) -> Decision:
    """An upgrade to TARGET (whose relup goes up from UP_FROM) or, for a
    rollback, a downgrade to TARGET (which the running release's relup must
    go down to: DOWN_TO)."""
    running = host.running
    if running == target:
        if host.permanent == target:
            return Decision(Action.SKIP, f"already running {target}", running)
        return Decision(Action.FINISH, f"{target} runs but is not permanent (an earlier deploy stopped "
                                       "before the health gate): gating it now", running)
    if down_to is not None:
        if target not in down_to:
            return Decision(Action.REFUSE, f"host runs {running}, whose relup goes down only to "
                                           f"{', '.join(down_to) or 'nothing'}; it cannot downgrade to "
                                           f"{target}. Roll back to one of those, or deploy {target} "
                                           "as a new release", running)
        if target not in host.statuses:
            return Decision(Action.REFUSE, f"host runs {running} but {target} is not installed on it "
                                           "(provisioned after it?): deploy a release instead", running)
        return Decision(Action.INSTALL, f"downgrade {running} -> {target}", running)
    if running not in up_from:
        frm = ", ".join(up_from) if up_from else "nothing (it is a first release without relup)"
        return Decision(Action.REFUSE, f"host runs {running}, but release {target} upgrades only from "
                                       f"{frm}. Deploy {' or '.join(up_from) or 'a matching version'} "
                                       f"first, or build a release against {running}", running)
    present = host.statuses.get(target) in ("unpacked", "old")
    return Decision(Action.INSTALL, f"upgrade {running} -> {target}", running, needs_transfer=not present)
