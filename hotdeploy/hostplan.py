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

from .errors import Refusal


class NodeDown(RuntimeError):
    pass


class NeedsRestart(Refusal, ValueError):
    """strategy=hot, and the environment record says some hosts would need a restart."""


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
    INSTALL = "install"              # hot: push (unless present), install, gate, make permanent
    RESTART = "restart"              # push (unless present), make it what boots, restart the node, gate
    REFUSE = "refuse"                # this release cannot go to this host (as asked)


STRATEGIES = ("auto", "hot", "restart")


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    running: str | None
    needs_transfer: bool = False


def _present(host: HostReleases, target: str) -> bool:
    return host.statuses.get(target) in ("unpacked", "old", "permanent", "current")


def decide_upgrade(host: HostReleases, target: str, up_from: list[str], down_to: list[str] | None = None,
                   strategy: str = "hot", restart_edges: dict[str, tuple[str, ...]] | None = None) -> Decision:
    """An upgrade to TARGET (whose relup goes up from UP_FROM; RESTART_EDGES:
    predecessors the build found need a restart, and why) or, for a
    rollback, a downgrade to TARGET (which the running release's relup must
    go down to: DOWN_TO), the way STRATEGY allows: `hot` only, `restart`
    always, `auto` hot where the host's own version allows it."""
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
        if target not in host.statuses:
            return Decision(Action.REFUSE, f"host runs {running} but {target} is not installed on it "
                                           "(provisioned after it?): deploy a release instead", running)
        if target in down_to and strategy != "restart":
            return Decision(Action.INSTALL, f"downgrade {running} -> {target}", running)
        if strategy == "hot":
            return Decision(Action.REFUSE, f"host runs {running}, whose relup goes down only to "
                                           f"{', '.join(down_to) or 'nothing'}; it cannot downgrade to "
                                           f"{target} hot. Roll back with strategy auto or restart (the node "
                                           f"restarts into {target}), or deploy {target} as a new release",
                                           running)
        if host.missing:
            return _incomplete(target, host, running)
        why = "strategy restart" if strategy == "restart" else f"{running}'s relup does not go down to {target}"
        return Decision(Action.RESTART, f"restart {running} -> {target} ({why})", running)
    hot_reasons = _hot_reasons(running, up_from, restart_edges or {})
    present = _present(host, target)
    if present and host.missing:
        return _incomplete(target, host, running)
    if strategy == "restart" or (strategy == "auto" and hot_reasons):
        why = "strategy restart" if strategy == "restart" else "; ".join(hot_reasons)
        return Decision(Action.RESTART, f"restart {running} -> {target} ({why})", running, needs_transfer=not present)
    if hot_reasons and running not in (restart_edges or {}):
        frm = ", ".join(up_from) if up_from else "nothing (it is a first release without relup)"
        return Decision(Action.REFUSE, f"host runs {running}, but release {target} upgrades only from "
                                       f"{frm}. Deploy {' or '.join(up_from) or 'a matching version'} "
                                       f"first, build a release against {running}, or deploy with strategy "
                                       "auto or restart", running)
    if hot_reasons:
        return Decision(Action.REFUSE, f"host runs {running}, which needs a restart to go to {target}: "
                                       f"{'; '.join(hot_reasons)}. Deploy with strategy auto or restart",
                        running)
    return Decision(Action.INSTALL, f"upgrade {running} -> {target}", running, needs_transfer=not present)


def presumed_base(recorded: dict | None, target: str, package_from: str | None, up_from: list[str],
                  strategy: str, restart_edges: dict[str, tuple[str, ...]]) -> str | None:
    """The version a host is taken to run, without asking it first (one
    exchange: package, config and the node program's call together), when
    the environment record (RECORDED, the host's entry) says it runs and has
    permanent the upgrade package's base, read by the last run, and that
    version goes to TARGET hot. None: ask the node first. The node checks the
    presumption itself before anything (its `presumed` step)."""
    if not isinstance(recorded, dict) or recorded.get("note") or strategy == "restart":
        return None
    running = recorded.get("running")
    if (not isinstance(running, str) or running != recorded.get("permanent") or running != package_from
            or running == target or _hot_reasons(running, up_from, restart_edges)):
        return None
    return running


def _hot_reasons(running: str | None, up_from: list[str], restart_edges: dict[str, tuple[str, ...]]) -> list[str]:
    """Why RUNNING cannot take the release hot (empty: it can)."""
    if running in restart_edges:
        return list(restart_edges[running]) or ["the build says it needs a restart"]
    if running not in up_from:
        return [f"its relup does not go up from {running}"]
    return []


def _incomplete(target: str, host: HostReleases, running: str | None) -> Decision:
    return Decision(Action.REFUSE, f"{target} is unpacked on the host but incomplete "
                                   f"({', '.join(host.missing[:5])}): remove it (release_handler:"
                                   f"remove_release(\"{target}\")) and deploy again", running)


PER_HOST = "per-host"   # a rollback's target when none is named: each host's own predecessor


def rollback_target(host: HostReleases, recorded_previous: str | None, down_to: list[str],
                    strategy: str = "hot", avoid: tuple[str, ...] = ()) -> tuple[str | None, str]:
    """Where a rollback with no version takes this host: the version it ran
    before the current one, as the environment record says, when it is
    still installed on the host (and, for a hot-only rollback, the running
    relup goes down to it); otherwise the newest such release older than the
    running one. None (and why) when there is none."""
    from .versions import Version
    running = host.running

    def older(v: str) -> bool:
        try:
            return Version.parse(v) < Version.parse(running)
        except ValueError:
            return False
    # a rollback goes back, never up (what a host ran before may be newer: it was rolled back from it)
    reachable = ((lambda v: v in down_to and v not in avoid and older(v)) if strategy == "hot" else
                 (lambda v: v not in avoid and older(v)))
    how = "that {running}'s relup goes down to" if strategy == "hot" else "still on it"
    if recorded_previous and recorded_previous in host.statuses and reachable(recorded_previous):
        return recorded_previous, f"back to {recorded_previous}, which this host ran before {running}"
    try:
        below = sorted((v for v in host.statuses if reachable(v)), key=Version.parse)
    except ValueError:
        below = []
    if below:
        return below[-1], (f"back to {below[-1]}, the newest release installed on the host "
                           f"{how.format(running=running)}" +
                           (f" ({recorded_previous}, which it ran before, is not: removed, or no relup)"
                            if recorded_previous else ""))
    return None, (f"host runs {running} and has no earlier release to go back to (installed: "
                  f"{', '.join(sorted(host.statuses))}; {running}'s relup goes down to "
                  f"{', '.join(down_to) or 'nothing'}): name a version with to_version, or deploy one")


def needing_restart(record_hosts: list[dict], target: str, up_from: list[str],
                    restart_edges: dict[str, tuple[str, ...]]) -> list[str]:
    """From the environment record: each host that could not take TARGET hot,
    and why (a strategy=hot deploy is refused with these, before anything)."""
    found = []
    for h in record_hosts:
        running = h.get("running") if isinstance(h, dict) else None
        if not isinstance(running, str) or running == target:
            continue
        why = _hot_reasons(running, up_from, restart_edges)
        if why:
            found.append(f"{h.get('host')} runs {running}: {'; '.join(why)}")
    return found


def refuse_restarts(record: dict, target: str, up_from: list[str], restart_edges: dict[str, tuple[str, ...]]) -> None:
    """strategy=hot: refuse, naming them, the hosts the environment record
    says would need a restart (a host the record does not know is checked
    again at its own preflight)."""
    hosts = [h for h in record.get("hosts", []) if isinstance(h, dict)]
    found = needing_restart(hosts, target, up_from, restart_edges)
    if found:
        raise NeedsRestart(f"strategy hot, but {len(found)} host(s) would need a restart to run {target}: "
                           f"{'; '.join(found)}. Nothing was done; deploy with strategy auto or restart")
