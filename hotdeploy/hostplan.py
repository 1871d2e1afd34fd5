"""What to do with one host, given what its node says (pure).

The node answers `inspect` (tasks/erlang/on_node.erl) with the releases it
knows (`vsn -> permanent|current|old|unpacked`), the one it RUNS (read from
the application versions it has loaded, not inferred from `permanent`), the
version its start script and start_erl.data would boot on a restart, and the
files of the target release that are missing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class NodeDown(RuntimeError):
    pass


@dataclass(frozen=True)
class HostReleases:
    statuses: dict[str, str] = field(default_factory=dict)
    running: str | None = None            # None: fall back to current, then permanent
    boots: str | None = None              # what a restart boots (start script), None: unknown
    missing: tuple[str, ...] = ()         # files of the target release that are missing
    pid: int | None = None
    disk_free: int | None = None
    block_size: int | None = None         # of the release root's file system

    def __post_init__(self):
        if self.running is None:
            for status in ("current", "permanent"):
                for vsn, s in self.statuses.items():
                    if s == status:
                        object.__setattr__(self, "running", vsn)
                        return

    @property
    def permanent(self) -> str | None:
        return next((v for v, s in self.statuses.items() if s == "permanent"), None)


def from_inspect(facts: dict) -> HostReleases:
    """The node's `inspect` answer as HostReleases."""
    statuses = {r["vsn"]: r["status"] for r in facts.get("releases", [])}
    if not statuses:
        raise NodeDown(f"the node lists no release: {facts.get('detail', '')}".strip())
    script, start_erl = facts.get("start_script"), facts.get("start_erl")
    boots = script or start_erl
    if script and start_erl and script != start_erl:
        boots = f"{script} (start script) / {start_erl} (start_erl.data)"
    return HostReleases(statuses, running=facts.get("running"), boots=boots,
                        missing=tuple(facts.get("target_missing", [])), pid=facts.get("os_pid"),
                        disk_free=facts.get("disk_free"), block_size=facts.get("block_size"))


# Room kept free beyond what an unpack needs (the node program keeps the
# same): logs, crash reports, RELEASES rewrites.
SPACE_MARGIN = 1 << 20


@dataclass(frozen=True)
class Footprint:
    """What a package takes on a host: the uploaded package itself, then
    every file and directory it unpacks (sizes in bytes)."""
    package_bytes: int
    file_sizes: tuple[int, ...] = ()
    directories: int = 0

    def on_disk(self, block: int) -> int:
        """Bytes on a file system of BLOCK-byte blocks (a file takes whole
        blocks, a directory at least one), with SPACE_MARGIN."""
        whole = sum(-(-size // block) * block for size in (self.package_bytes, *self.file_sizes))
        return whole + self.directories * block + SPACE_MARGIN


def disk_shortfall(footprint: Footprint, free: int | None, block: int | None) -> str | None:
    """Why FOOTPRINT cannot go to a host with FREE bytes in BLOCK-byte blocks,
    or None. Counted as the file system counts it: every file and directory
    the package unpacks, in whole blocks, counted as new (what exists is not
    unpacked again: the node counts that precisely before it unpacks)."""
    if free is None:
        return None
    need = footprint.on_disk(block or 4096)
    if free >= need:
        return None
    return (f"disk full: need {_mib(need)} (in {block or 4096}-byte blocks, with a {_mib(SPACE_MARGIN)} margin), "
            f"have {_mib(free)} free in the release root")


def use_upgrade_package(running: str | None, package_from: str | None) -> bool:
    """The upgrade package holds only what changed since PACKAGE_FROM: a host
    running anything else gets the full tarball."""
    return package_from is not None and running == package_from


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


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
        if host.missing:
            return Decision(Action.REFUSE, f"{target} runs, but its files are incomplete on the host "
                                           f"({', '.join(host.missing[:5])}): a restart would fail. Remove "
                                           f"releases/{target} and the partial lib/ directories, then deploy "
                                           "again", running)
        if host.permanent == target and host.boots not in (None, target):
            return Decision(Action.FINISH, f"{target} runs and is permanent, but a restart would boot "
                                           f"{host.boots}: gating it and making it permanent again", running)
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
    if present and host.missing:
        return Decision(Action.REFUSE, f"{target} is unpacked on the host but incomplete "
                                       f"({', '.join(host.missing[:5])}): remove it (release_handler:"
                                       f"remove_release(\"{target}\")) and deploy again", running)
    return Decision(Action.INSTALL, f"upgrade {running} -> {target}", running, needs_transfer=not present)


PER_HOST = "per-host"   # a rollback's target when none is named: each host's own predecessor


def rollback_target(host: HostReleases, recorded_previous: str | None, down_to: list[str]) -> tuple[str | None, str]:
    """Where a rollback with no version takes this host: the version it ran
    before the current one, as the environment record says, when it is
    still installed and the running relup goes down to it; otherwise the
    newest release installed on the host, older than the running one, that
    the relup goes down to. None (and why) when there is none."""
    from .versions import Version
    running = host.running
    if recorded_previous and recorded_previous in host.statuses and recorded_previous in down_to:
        return recorded_previous, f"back to {recorded_previous}, which this host ran before {running}"
    try:
        below = sorted((v for v in host.statuses if v in down_to and Version.parse(v) < Version.parse(running)),
                       key=Version.parse)
    except ValueError:
        below = []
    if below:
        return below[-1], (f"back to {below[-1]}, the newest release installed on the host that {running}'s "
                           "relup goes down to" + (f" ({recorded_previous}, which it ran before, is not: "
                                                   "removed, or no relup)" if recorded_previous else ""))
    return None, (f"host runs {running} and has no earlier release to go back to (installed: "
                  f"{', '.join(sorted(host.statuses))}; {running}'s relup goes down to "
                  f"{', '.join(down_to) or 'nothing'}): name a version with to_version, or deploy one")
