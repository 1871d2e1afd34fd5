"""One host's work, as one Prefect task each: upgrade (or downgrade),
provision, inspect. Every step is logged with its timing inside the task,
not made into a sub-task (each task run costs the server).

Upgrade of one host, over one SSH connection:
  inspect (the node says what it runs) -> decide (pure) -> [SFTP the package]
  -> SFTP the runtime config -> one remote program, evaluated inside the node
  (tasks/erlang/hotdeploy_node.erl): checksum, config check, unpack, install
  without permanence, gate, permanent; or, on a failed install or gate, back
  to the previous release, gated too.
A host the environment record shows on the upgrade package's base takes one
exchange: package and config in one SFTP session, then the program, which
checks the record's word itself (else the steps above, from inspect).
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.environment import DeployEnvironment
from hotdeploy import agent
from hotdeploy import commands as cmd
from hotdeploy.agent import Atom, Bin, NodeUnreachable, ProgramFailed, Tuple
from hotdeploy.edges import RESTART, read_edges
from hotdeploy.fleetstate import recorded_hosts
from hotdeploy.hostplan import (PER_HOST, Action, Decision, Footprint, HostReleases, NodeDown, decide_upgrade,
                                disk_shortfall, from_inspect, presumed_base, rollback_target, use_upgrade_package)
from hotdeploy.project import Project

from .nodeprogram import node_program
from .remote import CommandTimeout, Connection, Host, RemoteError
from .store import DeployInputs, Package, TarballSource, fetch_upgrade_package


@dataclass(frozen=True)
class Published:
    """A published release, its tarball fetched and checked on the worker
    (TARBALL), or fetched on first need (SOURCE)."""
    app: str
    version: str
    sha256: str
    tarball: Path | None = None
    footprint: Footprint | None = None                   # what the tarball takes on a host
    kind: str = "rebar3"                                 # rebar3 | mix: the start script's commands differ
    source: TarballSource | None = None

    def tarball_path(self) -> Path:
        return self.tarball or self.source.path()

    def tarball_footprint(self) -> Footprint | None:
        return self.footprint or (self.source.footprint() if self.source else None)


@dataclass(frozen=True)
class UpgradePlan:
    """Every host to RELEASE.version, up through its relup (UP_FROM): the
    upgrade PACKAGE to hosts on its base, the full tarball to others."""
    release: Published
    up_from: list[str]
    package: Package | None = None
    declared: list[dict] = field(default_factory=list)   # the manifest's `supervisors`
    strategy: str = "auto"                                # auto | hot | restart
    restart_edges: dict[str, tuple[str, ...]] = field(default_factory=dict)   # from -> why it needs a restart
    recorded: dict[str, dict] = field(default_factory=dict)   # host -> its entry in the environment record

    @property
    def app(self) -> str:
        return self.release.app


def upgrade_plan(store, app: str, inputs: DeployInputs, strategy: str, dest_dir: Path) -> UpgradePlan:
    """Every host to INPUTS' version: the upgrade package fetched now (small),
    the full tarball only when a host needs it (tens of MB with ERTS)."""
    manifest, vsn = inputs.manifest, inputs.version
    tarball = TarballSource(store, app, vsn, manifest["sha256"], dest_dir)
    package = fetch_upgrade_package(store, app, vsn, manifest.get("upgrade_package"), dest_dir)
    restart_edges = {v: e.reasons for v, e in read_edges(manifest).items() if e.strategy == RESTART}
    return UpgradePlan(Published(app, vsn, manifest["sha256"], source=tarball), manifest.get("up_from", []),
                       package, manifest.get("supervisors", []), strategy, restart_edges,
                       recorded_hosts(inputs.record))


@dataclass(frozen=True)
class DowngradePlan:
    """Every host down to TARGET (or, with PER_HOST, to what it ran before:
    RAN_BEFORE, else its newest older release), through the relup of what it
    runs (DOWN_PATHS: running version -> versions its relup goes down to)."""
    app: str
    target: str
    down_paths: dict[str, list[str]]
    ran_before: dict[str, str] = field(default_factory=dict)
    declared: dict[str, list[dict]] = field(default_factory=dict)    # version -> its manifest's `supervisors`
    strategy: str = "auto"                                            # auto | hot | restart
    avoid: tuple[str, ...] = ()                                       # never a per-host target (quarantined)


@dataclass
class HostOutcome:
    host: str
    address: str
    from_version: str | None = None
    to_version: str | None = None
    result: str = "pending"   # upgraded | installed | restarted | provisioned | downgraded | rolled back |
                              # already running | refused | failed | taken back | not started
    detail: str = ""
    step: str | None = None          # the node program's step that failed (install, gate, permanent, ...)
    pid_before: int | None = None
    pid_after: int | None = None
    sent_bytes: int = 0
    running: str | None = None       # what the node runs after this run (None: could not be read)
    permanent: str | None = None     # what it has permanent after this run
    config: str | None = None        # md5 prefix of the runtime config the node ends with
    down_seconds: float | None = None    # a restart: from stopping the node until the new one answered
    wave: int | None = None              # the rollout wave it was in (1: the canary, if any)
    shard: str | None = None             # the shard that ran it on the pool (w<wave>-s<n>), if any
    signals: dict | None = None          # how the service behaved during the soak (the node's figures)
    seconds: dict[str, float] = field(default_factory=dict)          # deployer-side steps, adding up
    node_seconds: dict[str, float] = field(default_factory=dict)     # inside "on node", as the node timed them

    @property
    def ok(self) -> bool:
        return self.result in ("upgraded", "installed", "restarted", "provisioned", "already running", "downgraded",
                               "answering", "observed", "would upgrade", "would restart", "would downgrade",
                               "would finish", "would refuse")

    def as_row(self) -> dict:
        return asdict(self)


class HostFailed(RuntimeError):
    def __init__(self, outcome: HostOutcome):
        super().__init__(f"{outcome.host}: {outcome.result}: {outcome.detail}")
        self.outcome = outcome


def _timed(outcome: HostOutcome, name: str, fn, *args, **kwargs):
    start = time.monotonic()
    try:
        return fn(*args, **kwargs)
    finally:
        outcome.seconds[name] = round(time.monotonic() - start, 3)


def _connect(env: DeployEnvironment, host: Host, outcome: HostOutcome, unreachable: str = "failed") -> Connection:
    try:
        return _timed(outcome, "connect", Connection, env, host)
    except RemoteError as e:
        outcome.result, outcome.detail = unreachable, str(e)
        raise HostFailed(outcome) from None


def _health(env: DeployEnvironment) -> dict:
    return _health_of(env).as_param()


def _params(env: DeployEnvironment, app: str, op: str, **extra) -> dict:
    return agent.call_params(op, env.release_root, app, **extra)


def _gate(env: DeployEnvironment) -> agent.Gate:
    return agent.Gate(_health_of(env), env.health_timeout_seconds, env.health_soak_seconds,
                      env.install_timeout_seconds or env.command_timeout_seconds)


def _health_of(env: DeployEnvironment) -> agent.Health:
    return agent.Health(env.app_port, env.health_path or None, env.health_status, env.health_body, env.health_match)


def gate_description(env: DeployEnvironment) -> str:
    """The environment's gate in words (the per-host table shows it)."""
    return _health_of(env).describe()


def _gate_params(env: DeployEnvironment) -> dict:
    return {**_gate(env).as_params(), "probe_path": env.probe_path or env.health_path or ""}


def _program_timeout(env: DeployEnvironment) -> int:
    """Install and gate, then possibly the way back with its own gate."""
    return int(_gate(env).upgrade_bound_s())


def ask_node(conn: Connection, env: DeployEnvironment, params: dict, timeout: float | None = None,
             before: str = "") -> dict:
    """Run the node program with PARAMS in the host's running node; BEFORE is
    a shell command that must succeed first (in the same SSH command)."""
    limit = int(timeout or 30)
    line = (before + " && " if before else "") + cmd.on_node(env.release_root, limit)
    try:
        result = conn.run(line, timeout=limit + 5, stdin=agent.program(params, node_program()))
    except CommandTimeout:
        raise RemoteError(f"{conn.host}: no answer from the node program within {limit + 5} s (link cut or "
                          f"node stuck); the node records each step in {env.release_root}/hotdeploy.log, and "
                          "a rerun reads what it runs") from None
    if result.exit_code == 3 and "checksum" in result.stderr:
        raise RemoteError(f"{conn.host}: {result.stderr.strip()}; nothing installed")
    try:
        return agent.parse_answer(result.stdout)
    except NodeUnreachable as e:
        raise NodeDown(f"{conn.host}: the node does not answer ({e}{'; ' + result.stderr.strip()[-200:] if result.stderr.strip() else ''})") from None
    except ProgramFailed as e:
        raise RemoteError(f"{conn.host}: the node program failed: {e}") from None


def inspect_node(conn: Connection, env: DeployEnvironment, app: str, target: str | None = None,
                 health: bool = False) -> tuple[HostReleases, dict]:
    extra = {"target": target} if target else {}
    if health:
        extra["health"] = _health(env)
    facts = ask_node(conn, env, _params(env, app, "inspect", **extra))
    if facts.get("result") == "failed":
        raise NodeDown(f"{conn.host}: {facts.get('detail')}")
    return from_inspect(facts), facts


def _record_prefix(run_id: str) -> str:
    return f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} run={run_id}"


def _push_package(conn: Connection, env: DeployEnvironment, release: Published, path: Path,
                  texts: list[tuple[str, str, int]] = ()) -> None:
    """The package (and TEXTS, in the same SFTP session) to the host."""
    part = cmd.upload_path(env.release_root, release.app, release.version)
    try:
        conn.upload(files=[(str(path), part)], texts=texts)
    except RemoteError as e:
        try:  # never leave a partial upload behind (a cut link: the next upload replaces it)
            conn.run(cmd.remove(part), timeout=15)
            left = "the partial upload was removed"
        except RemoteError:
            left = f"the partial upload {part} could not be removed (the next upload replaces it)"
        raise RemoteError(f"{e}; {left}") from None


_RESULTS = {"rolled_back": "rolled back", "failed": "failed", "reset": "reset"}


def _after_lost_answer(conn: Connection, env: DeployEnvironment, app: str, before: dict, error: Exception,
                       run_id: str, target: str) -> dict:
    """The node program died with its answer: release_handler's answer to an
    install that failed mid-relup (a code_change past its 5 s, a crash) is to
    restart the node's applications in the old release, which kills every
    process, ours too. Ask the node again what it runs; say what happened."""
    deadline = time.monotonic() + env.health_timeout_seconds
    while True:
        try:
            state, facts = inspect_node(conn, env, app, health=True)
            if facts.get("answers") or time.monotonic() > deadline:
                break
        except NodeDown:
            if time.monotonic() > deadline:
                raise RemoteError(f"{error}; the node does not answer since: needs attention") from None
        time.sleep(0.3)
    if before.get("app_sup") and facts.get("app_sup") != before.get("app_sup"):
        detail = (f"the install failed and release_handler restarted the node's applications in {state.running} "
                  f"(same OS process, in-memory state lost); the endpoint answers: {facts.get('answer')}")
        record = f"{_record_prefix(run_id)} to={target} result=reset running={state.running}"
        conn.run(cmd.append_log(env.release_root, record), timeout=15)
        return {"result": "reset" if facts.get("answers") else "failed", "detail": detail,
                "pid_after": state.pid}
    raise RemoteError(f"{error}; the node now runs {state.running}: rerun to finish or go back") from None


def _planned(plan: UpgradePlan | DowngradePlan) -> str:
    return plan.target if isinstance(plan, DowngradePlan) else plan.release.version


def _decide(conn: Connection, env: DeployEnvironment, plan: UpgradePlan | DowngradePlan, host: Host,
            outcome: HostOutcome) -> tuple[HostReleases, dict, str, Decision]:
    """Ask the node what it runs; decide (pure) what to do with it. Raises
    HostFailed for a host a per-host rollback has no version for."""
    log = get_run_logger()
    going_down = isinstance(plan, DowngradePlan)
    planned = _planned(plan)
    state, facts = _timed(outcome, "preflight", inspect_node, conn, env, plan.app,
                          None if planned == PER_HOST else planned)
    outcome.from_version, outcome.pid_before = state.running, state.pid
    outcome.running, outcome.permanent = state.running, state.permanent   # until the node says otherwise
    down_to = plan.down_paths.get(state.running or "", []) if going_down else None
    target = planned
    if target == PER_HOST:
        target, why = rollback_target(state, plan.ran_before.get(host.name), down_to or [], plan.strategy,
                                      plan.avoid)
        log.info("%s: %s", host, why)
        if target is None:
            outcome.result, outcome.detail = "refused", why
            raise HostFailed(outcome)
        outcome.to_version = target
    decision = decide_upgrade(state, target, [] if going_down else plan.up_from, down_to, plan.strategy,
                              None if going_down else plan.restart_edges)
    log.info("%s: %s", host, decision.reason)
    return state, facts, target, decision


@task(task_run_name="observe-{host.name}", cache_policy=NO_CACHE)
def observe_host(env: DeployEnvironment, host: Host, app: str, window_seconds: float, run_id: str) -> HostOutcome:
    """A baseline host beside a canary: its signals for WINDOW_SECONDS, sampled
    by the node the way a soak samples them. Changes nothing."""
    outcome = HostOutcome(host.name, host.address)
    conn = _connect(env, host, outcome, unreachable="unreachable")
    try:
        answer = ask_node(conn, env, _params(env, app, "observe", window_ms=int(window_seconds * 1000),
                                             probe_ms=env.canary_probe_ms, **_gate_params(env)),
                          int(window_seconds + 30))
        outcome.from_version = outcome.to_version = outcome.running = answer.get("running")
        outcome.pid_before = outcome.pid_after = answer.get("pid_after")
        outcome.signals = answer.get("signals")
        outcome.result = "observed" if answer.get("result") == "done" else "failed"
        outcome.detail = answer.get("detail", "")
        return outcome
    except (RemoteError, NodeDown) as e:
        outcome.result, outcome.detail = "unreachable", str(e)
        raise HostFailed(outcome) from None
    finally:
        conn.close()


@task(task_run_name="commit-{host.name}", cache_policy=NO_CACHE)
def commit_host(env: DeployEnvironment, host: Host, app: str, version: str, run_id: str) -> HostOutcome:
    """Make VERSION, installed and not yet permanent on the host, permanent:
    the node checks it still runs it (a node that restarted runs the old one:
    refused, and the flow takes the environment back) and gates it again."""
    outcome = HostOutcome(host.name, host.address, to_version=version)
    conn = _connect(env, host, outcome)
    try:
        params = _params(env, app, "upgrade", vsn=version, previous="", mode=Atom("finish"),
                         record=_record_prefix(run_id), **{**_gate_params(env), "soak_ms": 0})
        answer = _timed(outcome, "commit", ask_node, conn, env, params, _program_timeout(env))
        outcome.running, outcome.permanent = answer.get("running"), answer.get("permanent")
        outcome.from_version, outcome.pid_after = answer.get("from"), answer.get("pid_after")
        if answer.get("result") != "done":
            outcome.result, outcome.detail = "failed", f"{answer.get('step')}: {answer.get('detail')}"
            raise HostFailed(outcome)
        outcome.result, outcome.detail = "upgraded", "made permanent"
        return outcome
    except (RemoteError, NodeDown) as e:
        outcome.result, outcome.detail = "failed", str(e)
        raise HostFailed(outcome) from None
    finally:
        conn.close()


_WOULD = {Action.SKIP: "already running", Action.FINISH: "would finish", Action.INSTALL: "would upgrade",
          Action.RESTART: "would restart", Action.REFUSE: "would refuse"}


@task(task_run_name="plan-{host.name}", cache_policy=NO_CACHE)
def plan_host(env: DeployEnvironment, host: Host, plan: UpgradePlan | DowngradePlan, run_id: str) -> HostOutcome:
    """A dry run's host: what it runs, and what a deploy would do with it
    (hot or restart, and why; the package it would get). Read-only."""
    outcome = HostOutcome(host.name, host.address, to_version=_planned(plan))
    conn = _connect(env, host, outcome, unreachable="unreachable")
    try:
        state, _, target, decision = _decide(conn, env, plan, host, outcome)
        outcome.result = _WOULD[decision.action]
        if decision.action is Action.INSTALL and isinstance(plan, DowngradePlan):
            outcome.result = "would downgrade"
        sends = ""
        if decision.needs_transfer and isinstance(plan, UpgradePlan):
            delta = use_upgrade_package(state.running, plan.package and plan.package.upgrade_from)
            path = plan.package.path if delta else plan.release.tarball_path()
            sends = f"; it would get the {'upgrade package' if delta else 'full tarball'} " \
                    f"({path.stat().st_size // 1024} KB)"
        outcome.detail = decision.reason + sends
        outcome.pid_after = outcome.pid_before
        return outcome
    except HostFailed as e:
        e.outcome.result = "would refuse"
        return e.outcome
    except (RemoteError, NodeDown) as e:
        outcome.result, outcome.detail = "unreachable", str(e)
        raise HostFailed(outcome) from None
    finally:
        conn.close()


def _transfer(conn: Connection, env: DeployEnvironment, plan: UpgradePlan, state: HostReleases,
              outcome: HostOutcome, log) -> tuple[str, dict]:
    """Send the upgrade package (to a host on its base) or the full tarball,
    if the host has room for it; returns the shell line that checks it on the
    host and the node program's package parameter."""
    release = plan.release
    delta = plan.package if use_upgrade_package(state.running, plan.package and plan.package.upgrade_from) else None
    path, sha256, need = ((delta.path, delta.sha256, delta.footprint) if delta else
                          (release.tarball_path(), release.sha256, release.tarball_footprint()))
    short = need and disk_shortfall(need, state.disk_free, state.block_size)
    if short:
        outcome.result, outcome.detail = "failed", f"{short}; nothing transferred, nothing changed"
        raise HostFailed(outcome)
    _timed(outcome, "transfer", _push_package, conn, env, release, path)
    outcome.sent_bytes = path.stat().st_size
    log.info("%s: sent the %s (%d bytes)", conn.host, "upgrade package" if delta else "full tarball",
             outcome.sent_bytes)
    return (cmd.stage_package(env.release_root, release.app, release.version, sha256),
            {"package": cmd.package_name(release.app, release.version)})


def _restart(conn: Connection, env: DeployEnvironment, app: str, host: Host, state: HostReleases, target: str,
             decision, outcome: HostOutcome, run_id: str, params: dict, stage: str) -> HostOutcome:
    """A release that cannot be installed hot: the node program makes it what
    boots (not installed), the node is drained, stopped and started the way
    it runs, and the new node is gated. A new node that fails its gate (or
    does not start) is stopped, the previous release made what boots again
    (in a VM of its own), started and gated: `rolled back`."""
    log = get_run_logger()
    root, prev = env.release_root, state.running
    gate_params = _gate_params(env)
    prefix = _record_prefix(run_id)
    prepared = _timed(outcome, "prepare", ask_node, conn, env,
                      _params(env, app, "prepare_restart", vsn=target, previous=prev, record=prefix,
                              **{**gate_params, **params}), _program_timeout(env), stage)
    outcome.config = prepared.get("config")
    if prepared["result"] != "done":
        outcome.result = "failed"
        outcome.detail = f"{prepared.get('step')}: {prepared.get('detail')}; nothing restarted"
        outcome.running, outcome.permanent = prepared.get("running"), prepared.get("permanent")
        raise HostFailed(outcome)
    close = {"slot": prepared.get("record_slot") or 0, "from": prev, "to": target}
    if env.drain_function or env.drain_path:
        drain = {"drain_ms": int(env.drain_seconds * 1000), **gate_params}
        if env.drain_function:
            module, function = env.drain_function.split(":")
            drain["drain_mfa"] = Tuple((Atom(module), Atom(function), []))
        else:
            drain["drain_path"] = env.drain_path
        said = _timed(outcome, "drain", ask_node, conn, env, _params(env, app, "drain", **drain),
                      int(env.drain_seconds + 60))
        log.info("%s: drained (%s)", host, said.get("detail") or "done")
    loopback = env.distribution == "loopback"
    down_at = time.monotonic()
    try:
        _put_service_environment(conn, env)     # what the new node starts with
        _timed(outcome, "stop", conn.check, cmd.stop_node(root, app, state.pid, int(env.stop_timeout_seconds)),
               env.stop_timeout_seconds + 15, "stop the node")
        _timed(outcome, "start", conn.check, cmd.start_node(root, app, 60, loopback), 75, "start the node")
        gate = _timed(outcome, "gate", _gate_after_start, conn, env, app, target,
                      close={**close, "done": Atom("restarted"), "failed": Atom("none")}, record=prefix,
                      **({"expected_children": params["expected_children"]} if "expected_children" in params
                         else {}))
    except (RemoteError, NodeDown) as e:
        gate = {"result": "failed", "step": "start", "detail": str(e)}
    outcome.down_seconds = round(time.monotonic() - down_at - (env.health_soak_seconds
                                                                if gate.get("result") == "done" else 0), 2)
    if gate.get("result") == "done":
        outcome.result = "restarted"
        outcome.detail = decision.reason
        outcome.signals = gate.get("signals")
        outcome.running, outcome.permanent = gate.get("running"), gate.get("permanent")
        outcome.pid_after, outcome.config = gate.get("pid_after"), gate.get("config")
        return outcome
    why = f"{gate.get('step', 'gate')}: {gate.get('detail')}"
    outcome.step = gate.get("step", "gate")
    log.warning("%s: the new node failed (%s): restarting it into %s", host, why, prev)
    try:
        conn.check(cmd.stop_node(root, app, gate.get("pid_after"), int(env.stop_timeout_seconds)),
                   env.stop_timeout_seconds + 15, "stop the new node")
        back = conn.run(cmd.on_fresh_vm(root), timeout=60,
                        stdin=agent.program(_params(env, app, "set_boot", vsn=prev), node_program()))
        answer = agent.parse_answer(back.stdout) if back.stdout.strip() else {"result": "failed",
                                                                              "detail": back.stderr[-300:]}
        if answer.get("result") != "done":
            raise RemoteError(f"making {prev} what boots failed: {answer.get('detail')}")
        conn.check(cmd.start_node(root, app, 60, loopback), 75, "start the node")
        gate = _timed(outcome, "back", _gate_after_start, conn, env, app, prev,
                      close={**close, "done": Atom("rolled_back"), "failed": Atom("failed")}, record=prefix)
    except (RemoteError, NodeDown, agent.NodeUnreachable, agent.ProgramFailed) as e:
        gate = {"result": "failed", "detail": str(e)}
    outcome.running, outcome.permanent = gate.get("running"), gate.get("permanent")
    outcome.pid_after = gate.get("pid_after")
    if gate.get("result") == "done":
        outcome.result, outcome.detail = "rolled back", f"{why}; restarted back into {prev}"
    else:
        outcome.result = "failed"
        outcome.detail = f"{why}; going back to {prev} failed too: {gate.get('detail')}: needs attention"
    raise HostFailed(outcome)


def _children(declared: list[dict] | None) -> dict:
    """The expected_children parameter: the supervisors' child ids a release declares."""
    return ({"expected_children": [{"sup": Atom(s["sup"]), "ids": [Bin(i) for i in s["ids"]]} for s in declared]}
            if declared else {})


def _sup_at_begin(conn: Connection, env: DeployEnvironment, prefix: str) -> str | None:
    """The top supervisor's pid the node program wrote in its begin line:
    None when there is no begin line (the program never began), "" when the
    log cannot be read (unknown: the node is asked what it runs)."""
    try:
        lines = conn.run(cmd.log_lines_of(env.release_root, prefix), timeout=15).stdout
    except RemoteError:
        return ""
    found = re.findall(r" result=begin sup=(<[0-9.]+>)", lines)
    return found[-1] if found else None


def _one_exchange(conn: Connection, env: DeployEnvironment, plan: UpgradePlan, host: Host, base: str,
                  outcome: HostOutcome, run_id: str, commit: bool, children: dict) -> HostOutcome | None:
    """The upgrade of a host the environment record shows on the upgrade
    package's BASE, without asking it first: package and config in one SFTP
    session, then the node program, which checks the record's word before
    anything. None: the node is not as recorded (nothing done, what was
    staged removed); ask it and decide as usual."""
    log = get_run_logger()
    release, package, root = plan.release, plan.package, env.release_root
    staged = cmd.staged_config_path(root)
    _timed(outcome, "transfer", _push_package, conn, env, release, package.path,
           [(env.runtime_config.get_secret_value(), staged, 0o600)])
    outcome.sent_bytes = package.path.stat().st_size
    prefix = _record_prefix(run_id)
    params = {"package": cmd.package_name(release.app, release.version), "config": staged,
              **_params(env, plan.app, "upgrade", vsn=release.version, previous=base, mode=Atom("install"),
                        record=prefix, commit=commit, presumed=True, **_gate_params(env)), **children}
    outcome.from_version, outcome.running, outcome.permanent = base, None, None
    try:
        answer = _timed(outcome, "on node", ask_node, conn, env, params, _program_timeout(env),
                        cmd.stage_package(root, release.app, release.version, package.sha256))
    except (RemoteError, NodeDown) as e:
        sup = _sup_at_begin(conn, env, prefix)
        if sup is None:   # the program never began: nothing done; ask the node as usual
            return _not_as_recorded(outcome, host, str(e))
        answer = _after_lost_answer(conn, env, plan.app, {"app_sup": sup}, e, run_id, release.version)
    if answer["result"] == "failed" and answer.get("step") == "presumed":
        return _not_as_recorded(outcome, host, answer.get("detail", ""))
    if answer["result"] == "node_restarting":
        answer = _after_lost_answer(conn, env, plan.app, {"app_sup": _sup_at_begin(conn, env, prefix)},
                                    RemoteError(answer.get("detail", "")), run_id, release.version)
    outcome.pid_before = answer.get("pid_before")
    return _settle(outcome, answer, f"upgrade {base} -> {release.version} (in one exchange: the host as recorded)",
                   False, host, f"sent the upgrade package ({outcome.sent_bytes} bytes) and the config with the "
                                "call; ")


def _not_as_recorded(outcome: HostOutcome, host: Host, why: str) -> None:
    """The one exchange did nothing: its time is kept apart, the usual path follows."""
    get_run_logger().info("%s: %s; asking it first", host, why)
    outcome.sent_bytes = 0
    outcome.seconds["presumed"] = round(outcome.seconds.pop("transfer", 0) + outcome.seconds.pop("on node", 0), 3)
    return None


def _settle(outcome: HostOutcome, answer: dict, reason: str, going_down: bool, host: Host,
            said: str = "") -> HostOutcome:
    """The host's outcome from the node program's answer to an upgrade call
    (logged after SAID, in one line: each line costs the server).
    Raises HostFailed unless it ended on the target (or installed it)."""
    log = get_run_logger()
    outcome.node_seconds = dict(sorted(answer.get("steps", {}).items()))
    log.info("%s: %son the node: %s", host, said,
             ", ".join(f"{k} {v:.3f}s" for k, v in sorted(answer.get("steps", {}).items())) or "nothing")
    outcome.pid_after = answer.get("pid_after", outcome.pid_before)
    outcome.running = answer.get("running")
    outcome.permanent = answer.get("permanent")
    outcome.config = answer.get("config")
    outcome.signals = answer.get("signals")
    if answer.get("config_overridden"):
        log.warning("%s: config/runtime.exs sets %s, which the environment's runtime_config sets too: "
                    "runtime.exs wins (set each key in one place)", host, ", ".join(answer["config_overridden"]))
    if answer["result"] == "installed":
        outcome.result, outcome.detail = "installed", reason + "; not permanent yet"
        return outcome
    if answer["result"] == "done":
        outcome.result = "downgraded" if going_down else "upgraded"
        outcome.detail = reason + answer.get("detail", "")
        return outcome
    outcome.result = _RESULTS.get(answer["result"], "failed")
    outcome.step = answer.get("step")
    outcome.detail = (f"{answer.get('step')}: " if answer.get("step") and outcome.result == "failed" else "") + \
        f"{answer.get('detail', '')}"
    if outcome.result == "rolled back":
        log.warning("%s: %s", host, outcome.detail)
    raise HostFailed(outcome)


@task(task_run_name="upgrade-{host.name}", cache_policy=NO_CACHE)
def upgrade_host(env: DeployEnvironment, host: Host, plan: UpgradePlan | DowngradePlan, run_id: str,
                 commit: bool = True) -> HostOutcome:
    """Bring one host to the plan's version by hot upgrade (or downgrade, for
    a rollback). Raises HostFailed, carrying the outcome, unless the host ends
    on the target or was already there. COMMIT false: a hot upgrade stops
    short of permanence (`installed`: a canary verdict or a stability window
    decides; a restart of the node meanwhile boots what ran before)."""
    log = get_run_logger()
    going_down = isinstance(plan, DowngradePlan)
    outcome = HostOutcome(host.name, host.address, to_version=_planned(plan))
    conn = _connect(env, host, outcome)
    try:
        if not going_down:
            base = presumed_base(plan.recorded.get(host.name), plan.release.version,
                                 plan.package.upgrade_from if plan.package else None, plan.up_from, plan.strategy,
                                 plan.restart_edges)
            if base:
                done = _one_exchange(conn, env, plan, host, base, outcome, run_id, commit, _children(plan.declared))
                if done is not None:
                    return done
        state, facts, target, decision = _decide(conn, env, plan, host, outcome)
        if decision.action is Action.SKIP:
            outcome.result, outcome.detail = "already running", decision.reason
            outcome.pid_after = outcome.pid_before
            return outcome
        if decision.action is Action.REFUSE:
            outcome.result, outcome.detail = "refused", decision.reason
            raise HostFailed(outcome)
        children = _children(plan.declared.get(target) if going_down else plan.declared)
        stage, params = "", {}
        if decision.needs_transfer and not going_down:
            stage, params = _transfer(conn, env, plan, state, outcome, log)
        if not going_down:
            staged = cmd.staged_config_path(env.release_root)
            _timed(outcome, "config", conn.put_text, env.runtime_config.get_secret_value(), staged)
            params["config"] = staged
        else:  # going down: the config that was in force with the target comes back (kept on the host)
            params["config_back"] = True
        if decision.action is Action.RESTART:
            return _restart(conn, env, plan.app, host, state, target, decision, outcome, run_id,
                            {**params, **children}, stage)
        params.update(_params(env, plan.app, "upgrade", vsn=target,
                              previous=state.running if decision.action is Action.INSTALL else (state.permanent or ""),
                              mode=Atom("install" if decision.action is Action.INSTALL else "finish"),
                              record=_record_prefix(run_id), commit=commit, **_gate_params(env)), **children)
        outcome.running = outcome.permanent = None     # from here, only the node's answer says
        try:
            answer = _timed(outcome, "on node", ask_node, conn, env, params, _program_timeout(env), stage)
        except (RemoteError, NodeDown) as e:
            answer = _after_lost_answer(conn, env, plan.app, facts, e, run_id, target)
        if answer["result"] == "node_restarting":
            answer = _after_lost_answer(conn, env, plan.app, facts, RemoteError(answer.get("detail", "")),
                                        run_id, target)
        return _settle(outcome, answer, decision.reason, going_down, host)
    except HostFailed:
        raise
    except (RemoteError, NodeDown) as e:
        outcome.result, outcome.detail = "failed", str(e)
        raise HostFailed(outcome) from None
    finally:
        conn.close()


@task(task_run_name="provision-{host.name}", cache_policy=NO_CACHE)
def provision_one(env: DeployEnvironment, host: Host, release: Published, run_id: str) -> HostOutcome:
    """First install on a bare host (the seed's Ansible role + Upstart job):
    release root, unpacked release, runtime config, a systemd unit (enabled
    where systemd runs; otherwise the release starts as a daemon under a
    timeout), then the gate. A host whose node already answers is left as it is."""
    log = get_run_logger()
    root, app, vsn = env.release_root, release.app, release.version
    outcome = HostOutcome(host.name, host.address, to_version=vsn)
    conn = _connect(env, host, outcome)
    try:
        if conn.run(f"test -x {cmd.script(root, app)}").exit_code == 0:
            try:
                state, _ = inspect_node(conn, env, app)
                outcome.from_version = outcome.to_version = state.running
                outcome.running, outcome.permanent = state.running, state.permanent
                outcome.result, outcome.detail = "already running", f"provisioned already, runs {state.running}"
                outcome.pid_before = outcome.pid_after = state.pid
                return outcome
            except NodeDown:
                log.info("%s: the release is there but its node does not answer: starting it", host)
        else:
            staged = f"/tmp/hotdeploy-{app}-{vsn}.tar.gz"
            conn.check(cmd.mkdir(f"{root}/log"))
            _timed(outcome, "transfer", conn.put_file, str(release.tarball_path()), staged)
            if conn.check(cmd.sha256sum(staged)).stdout.split()[0] != release.sha256:
                conn.run(cmd.remove(staged))
                raise RemoteError(f"{host}: tarball checksum mismatch after transfer; removed, nothing installed")
            _timed(outcome, "unpack", conn.check, cmd.unpack_first_release(root, staged))
            conn.run(cmd.remove(staged))
        # The node is not up yet, so the config is checked by the first boot (and the gate).
        conn.put_text(env.runtime_config.get_secret_value(), f"{root}/runtime.config")
        _put_service_environment(conn, env)
        conn.check(cmd.ensure_cookie(), what="create the Erlang cookie")
        conn.check(cmd.cookie_for_start_script(root), what="give the start script the host's cookie")
        answer = _timed(outcome, "first boot", _prepare_first_boot, conn, env, app, vsn)
        log.info("%s: before the first boot: RELEASES %s, sys.config %s", host,
                 "made" if answer.get("releases_made") else "there already",
                 "with the runtime config" if answer.get("sys_config_made") else "names it (relx)")
        unit_path = f"{root}/{app}.service"
        start = Project(release.kind, app).start_command
        loopback = env.distribution == "loopback"
        conn.put_text(cmd.systemd_unit(root, app, env.ssh_user, start, loopback), unit_path, mode=0o644)
        if conn.run(cmd.systemd_present()).exit_code == 0:
            conn.check(cmd.enable_unit(unit_path, f"{app}.service"), what="enable the systemd unit")
            started = "first install, started by its systemd unit"
        else:
            started = "first install, started as a daemon (no systemd)"
            log.info("%s: no systemd; starting the release as a daemon", host)
            _timed(outcome, "start", conn.check, cmd.start_daemon(root, app, 60, loopback), None,
                   "start the node")
        answer = _timed(outcome, "gate", _gate_after_start, conn, env, app, vsn)
        if answer.get("result") != "done":
            raise RemoteError(f"{host}: {answer.get('detail')}")
        state, _ = inspect_node(conn, env, app)
        outcome.result, outcome.detail = "provisioned", started
        outcome.from_version, outcome.pid_after = None, state.pid
        outcome.running, outcome.permanent = state.running, state.permanent
        return outcome
    except (RemoteError, NodeDown) as e:
        outcome.result, outcome.detail = "failed", str(e)
        raise HostFailed(outcome) from None
    finally:
        conn.close()


def _put_service_environment(conn: Connection, env: DeployEnvironment) -> None:
    """The block's service_environment as the two files the unit and the
    daemon start read (0600; empty files when it is empty: a variable
    removed from the block is gone at the next start)."""
    variables = cmd.parse_service_environment(env.service_environment.get_secret_value())
    conn.put_text(cmd.service_environment_file(variables), f"{env.release_root}/{cmd.SERVICE_ENV}")
    conn.put_text(cmd.service_environment_script(variables), f"{env.release_root}/{cmd.SERVICE_ENV_SH}")


def _prepare_first_boot(conn: Connection, env: DeployEnvironment, app: str, vsn: str) -> dict:
    """The node program's first_boot op, in a VM booted for it (the node is
    not up yet): RELEASES, and a mix release's sys.config."""
    result = conn.run(cmd.on_fresh_vm(env.release_root), timeout=60,
                      stdin=agent.program(_params(env, app, "first_boot", vsn=vsn), node_program()))
    try:
        answer = agent.parse_answer(result.stdout)
    except (NodeUnreachable, ProgramFailed):
        raise RemoteError(f"{conn.host}: preparing the first boot failed (exit {result.exit_code}): "
                          f"{(result.stderr or result.stdout).strip()[-300:]}") from None
    if answer.get("result") != "done":
        raise RemoteError(f"{conn.host}: preparing the first boot failed: {answer.get('detail')}")
    return answer


def _gate_after_start(conn: Connection, env: DeployEnvironment, app: str, vsn: str, close: dict | None = None,
                      record: str | None = None, **extra) -> dict:
    """The gate, once the freshly started node answers erl_call at all;
    CLOSE: the record an earlier call began (with the prefix RECORD),
    closed by the gate's result."""
    deadline = time.monotonic() + env.health_timeout_seconds
    params = _params(env, app, "gate", vsn=vsn, **_gate_params(env), **extra)
    if close and record:
        params.update(close=close, record=record)
    while True:
        try:
            return ask_node(conn, env, params, _program_timeout(env))
        except NodeDown:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@task(task_run_name="status-{host.name}", cache_policy=NO_CACHE)
def inspect_host(env: DeployEnvironment, host: Host, app: str, run_id: str) -> HostOutcome:
    """Read-only: the releases the node knows, which it runs and which is
    permanent, what a restart would boot, its pid, what the endpoint answers."""
    outcome = HostOutcome(host.name, host.address)
    conn = _connect(env, host, outcome, unreachable="unreachable")
    try:
        state, facts = inspect_node(conn, env, app, health=True)
        outcome.from_version = outcome.running = state.running
        outcome.to_version = outcome.permanent = state.permanent
        outcome.config = facts.get("config")
        outcome.pid_before = outcome.pid_after = state.pid
        said = facts.get("answer", "")
        boots = f"; a restart boots {state.boots}" if state.boots not in (None, state.running) else ""
        outcome.detail = (" ".join(f"{v}:{s}" for v, s in state.statuses.items()) + f"; endpoint: {said}" + boots)
        outcome.result = "answering" if facts.get("answers") else "not answering"
        if outcome.result != "answering":
            raise HostFailed(outcome)
        return outcome
    except (RemoteError, NodeDown) as e:
        outcome.result, outcome.detail = "node down" if isinstance(e, NodeDown) else "failed", str(e)
        raise HostFailed(outcome) from None
    finally:
        conn.close()
