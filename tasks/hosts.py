"""Per-host steps of a hot upgrade, each one SSH step, and the per-host
procedure that chains them (mapped over the fleet by the flows).

Upgrade of one host:
  preflight (versions, node pid) -> decide (pure) -> push tarball (SFTP) +
  sha256 check -> write + validate runtime.config -> install, not permanent
  -> health gate (version endpoint == target) -> make permanent;
  a failed install or gate -> back to the previous version, reported as such.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.environment import DeployEnvironment
from hotdeploy import commands as cmd
from hotdeploy.hostplan import Action, HostReleases, NodeDown, decide_upgrade, parse_versions

from .remote import Connection, Host, RemoteError

STEP = dict(cache_policy=NO_CACHE)
RETRIED_STEP = dict(retries=2, retry_delay_seconds=[1, 3], cache_policy=NO_CACHE)


@dataclass
class ReleaseToShip:
    app: str
    version: str
    sha256: str
    up_from: list[str]
    tarball: Path | None = None                          # None: nothing to push (rollback)
    down_paths: dict[str, list[str]] | None = None       # rollback: running vsn -> versions its relup goes down to


@dataclass
class HostOutcome:
    host: str
    address: str
    from_version: str | None = None
    to_version: str | None = None
    result: str = "pending"          # upgraded | rolled back | already running | refused | failed
    detail: str = ""
    pid_before: int | None = None
    pid_after: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.result in ("upgraded", "already running", "downgraded", "answering")

    def as_row(self) -> dict:
        return asdict(self)


class HostFailed(RuntimeError):
    def __init__(self, outcome: HostOutcome):
        super().__init__(f"{outcome.host}: {outcome.result}: {outcome.detail}")
        self.outcome = outcome


@task(**RETRIED_STEP)
def read_releases(conn: Connection, env: DeployEnvironment, app: str) -> HostReleases:
    return parse_versions(conn.run(cmd.versions(env.release_root, app), timeout=30).output)


@task(**RETRIED_STEP)
def read_node_pid(conn: Connection, env: DeployEnvironment, app: str) -> int | None:
    result = conn.run(cmd.node_pid(env.release_root, app), timeout=30)
    text = result.stdout.strip().splitlines()
    return int(text[-1]) if result.exit_code == 0 and text and text[-1].isdigit() else None


@task(retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def push_release(conn: Connection, env: DeployEnvironment, release: ReleaseToShip) -> None:
    """SFTP the tarball beside its final name, check sha256 on the host before
    anything uses it, then move it where relx's install looks."""
    final = cmd.tarball_path(env.release_root, release.app, release.version)
    part = final + ".part"
    conn.check(cmd.mkdir(cmd.release_dir(env.release_root, release.version)))
    conn.put_file(str(release.tarball), part)
    digest = conn.check(cmd.sha256sum(part)).stdout.split()[0]
    if digest != release.sha256:
        conn.run(cmd.remove(part))
        raise RemoteError(f"{conn.host}: tarball checksum mismatch after transfer ({digest} != "
                          f"{release.sha256}); removed, nothing installed")
    conn.check(cmd.move(part, final))


@task(**RETRIED_STEP)
def write_runtime_config(conn: Connection, env: DeployEnvironment) -> None:
    """runtime.config is re-read at every hot upgrade: validate before it
    replaces the one in place (a bad one is ignored silently at upgrade and
    fatal at the next boot)."""
    root = env.release_root
    staged = f"{root}/runtime.config.new"
    conn.put_text(env.runtime_config.get_secret_value(), staged)
    check = conn.run(cmd.validate_config(root, staged), timeout=60)
    if check.exit_code != 0:
        conn.run(cmd.remove(staged))
        raise RemoteError(f"{conn.host}: the environment's runtime_config is not valid Erlang config: "
                          f"{check.output[-300:]}")
    conn.check(cmd.move(staged, f"{root}/runtime.config"))


@task(**STEP)
def install_release(conn: Connection, env: DeployEnvironment, app: str, version: str, permanent: bool) -> None:
    conn.check(cmd.install(env.release_root, app, version, permanent), what=f"install {version}")


@task(**RETRIED_STEP)
def count_crash_reports(conn: Connection, env: DeployEnvironment) -> int:
    out = conn.run(cmd.crash_reports(env.release_root), timeout=15).stdout.strip()
    return int(out) if out.isdigit() else 0


@task(**STEP)
def health_gate(conn: Connection, env: DeployEnvironment, version: str, crashes_before: int | None = None) -> str:
    """Wait until the version endpoint answers VERSION, then, for
    health_soak_seconds, that no process crashed (release_handler reports
    success even when a code_change leaves a process that crashes)."""
    deadline = time.monotonic() + env.health_timeout_seconds
    seen = ""
    while True:
        result = conn.run(cmd.health(env.app_port, env.health_path), timeout=10)
        seen = result.output if result.exit_code == 0 else f"(curl exit {result.exit_code}) {result.output}"
        if result.exit_code == 0 and result.stdout.strip() == version:
            break
        if time.monotonic() > deadline:
            raise RemoteError(f"{conn.host}: health gate: {env.health_path} answered {seen[-200:]!r}, "
                              f"not {version}, within {env.health_timeout_seconds:g} s")
        time.sleep(0.5)
    if crashes_before is not None:
        time.sleep(env.health_soak_seconds)
        crashes = count_crash_reports.fn(conn, env)
        if crashes > crashes_before:
            raise RemoteError(f"{conn.host}: health gate: {crashes - crashes_before} process crash report(s) "
                              f"in log/erlang.log.* since the install of {version} (a code_change that "
                              "does not match the state?)")
    return seen


@task(**RETRIED_STEP)
def make_permanent(conn: Connection, env: DeployEnvironment, app: str, version: str) -> None:
    conn.check(cmd.make_permanent(env.release_root, app, version), what=f"make {version} permanent")


@task(**STEP)
def record(conn: Connection, env: DeployEnvironment, outcome: HostOutcome, run_id: str) -> None:
    """Append the outcome to <root>/hotdeploy.log on the host itself (best
    effort, short: the flow's summary holds the same record)."""
    line = (f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} run={run_id} from={outcome.from_version} "
            f"to={outcome.to_version} result={outcome.result}")
    conn.run(cmd.append_log(env.release_root, line), timeout=5)


def _connect(env: DeployEnvironment, host: Host, outcome: HostOutcome, unreachable: str = "failed") -> Connection:
    try:
        return _timed(outcome, "connect", Connection, env, host)
    except RemoteError as e:
        outcome.result, outcome.detail = unreachable, str(e)
        raise HostFailed(outcome) from None


def _timed(outcome: HostOutcome, name: str, fn, *args):
    start = time.monotonic()
    try:
        return fn(*args)
    finally:
        outcome.seconds[name] = round(time.monotonic() - start, 3)


@task(task_run_name="upgrade-{host.name}", cache_policy=NO_CACHE)
def upgrade_host(env: DeployEnvironment, host: Host, release: ReleaseToShip, run_id: str) -> HostOutcome:
    """Bring one host to release.version by hot upgrade (or downgrade, for a
    rollback). Raises HostFailed, carrying the outcome, unless the host ends on
    the target or was already there."""
    log = get_run_logger()
    outcome = HostOutcome(host.name, host.address, to_version=release.version)
    conn = _connect(env, host, outcome)
    try:
        state = _timed(outcome, "preflight", read_releases, conn, env, release.app)
        outcome.from_version = state.running
        outcome.pid_before = read_node_pid(conn, env, release.app)
        down_to = None
        if release.down_paths is not None:
            down_to = release.down_paths.get(state.running or "", [])
        decision = decide_upgrade(state, release.version, release.up_from, down_to)
        log.info("%s: %s", host, decision.reason)
        if decision.action is Action.SKIP:
            outcome.result, outcome.detail = "already running", decision.reason
            outcome.pid_after = outcome.pid_before
            return outcome
        if decision.action is Action.REFUSE:
            outcome.result, outcome.detail = "refused", decision.reason
            raise HostFailed(outcome)
        if decision.needs_transfer:
            _timed(outcome, "transfer", push_release, conn, env, release)
        _timed(outcome, "config", write_runtime_config, conn, env)
        if decision.action is Action.INSTALL:
            record(conn, env, HostOutcome(host.name, host.address, state.running, release.version, "begin"), run_id)
            crashes = count_crash_reports(conn, env)
            try:
                _timed(outcome, "install", install_release, conn, env, release.app, release.version, False)
                _timed(outcome, "gate", health_gate, conn, env, release.version, crashes)
            except RemoteError as e:
                _back_to(conn, env, release.app, state.running, outcome, str(e))
                raise HostFailed(outcome) from None
        else:  # FINISH: installed by an earlier run that stopped before making it permanent
            try:
                _timed(outcome, "gate", health_gate, conn, env, release.version, count_crash_reports(conn, env))
            except RemoteError as e:
                previous = state.permanent
                _back_to(conn, env, release.app, previous, outcome, str(e))
                raise HostFailed(outcome) from None
        _timed(outcome, "permanent", make_permanent, conn, env, release.app, release.version)
        outcome.result = "downgraded" if release.down_paths is not None else "upgraded"
        outcome.pid_after = read_node_pid(conn, env, release.app)
        return outcome
    except HostFailed:
        raise
    except (RemoteError, NodeDown) as e:
        outcome.result, outcome.detail = "failed", str(e)
        raise HostFailed(outcome) from None
    finally:
        if outcome.result not in ("pending",):
            try:
                record(conn, env, outcome, run_id)
            except Exception:  # the record is best effort; the flow's summary has it too
                pass
        conn.close()


def _back_to(conn: Connection, env: DeployEnvironment, app: str, previous: str | None,
             outcome: HostOutcome, why: str) -> None:
    """After a failed install or gate: return to PREVIOUS and say so."""
    get_run_logger().warning("%s: %s; going back to %s", conn.host, why, previous)
    try:
        state = read_releases.fn(conn, env, app)
        if previous and state.running != previous:
            install_release.fn(conn, env, app, previous, True)
        outcome.result = "rolled back"
        outcome.detail = f"{why}; back on {previous}"
        outcome.pid_after = read_node_pid.fn(conn, env, app)
    except (RemoteError, NodeDown) as e:
        outcome.result = "failed"
        outcome.detail = f"{why}; going back to {previous} failed too: {e}"


@task(task_run_name="provision-{host.name}", cache_policy=NO_CACHE)
def provision_one(env: DeployEnvironment, host: Host, release: ReleaseToShip, run_id: str) -> HostOutcome:
    """First install on a bare host (the seed's Ansible role + Upstart job):
    release root, unpacked release, runtime config, a systemd unit (enabled
    where systemd runs; otherwise the release starts as a daemon under a
    timeout), then the version endpoint. A host whose node already answers is
    left as it is."""
    log = get_run_logger()
    root, app, vsn = env.release_root, release.app, release.version
    outcome = HostOutcome(host.name, host.address, to_version=vsn)
    conn = _connect(env, host, outcome)
    try:
        try:
            state = read_releases.fn(conn, env, app)
            outcome.from_version = outcome.to_version = state.running
            outcome.result, outcome.detail = "already running", f"provisioned already, runs {state.running}"
            outcome.pid_before = outcome.pid_after = read_node_pid.fn(conn, env, app)
            return outcome
        except (NodeDown, RemoteError):
            pass
        if conn.run(f"test -x {cmd.script(root, app)}").exit_code != 0:
            staged = f"/tmp/hotdeploy-{app}-{vsn}.tar.gz"
            conn.check(cmd.mkdir(f"{root}/log"))
            conn.put_file(str(release.tarball), staged)
            if conn.check(cmd.sha256sum(staged)).stdout.split()[0] != release.sha256:
                raise RemoteError(f"{host}: tarball checksum mismatch after transfer")
            _timed(outcome, "unpack", conn.check, cmd.unpack_first_release(root, staged))
            conn.run(cmd.remove(staged))
        _timed(outcome, "config", write_runtime_config.fn, conn, env)
        conn.check(cmd.ensure_cookie(), what="create the Erlang cookie")
        unit_path = f"{root}/{app}.service"
        conn.put_text(cmd.systemd_unit(root, app, env.ssh_user), unit_path, mode=0o644)
        if conn.run(cmd.systemd_present()).exit_code == 0:
            conn.check(cmd.enable_unit(unit_path, f"{app}.service"), what="enable the systemd unit")
        else:
            log.info("%s: no systemd; starting the release as a daemon", host)
            _timed(outcome, "start", conn.check, cmd.start_daemon(root, app, 60), None, "start the node")
        _timed(outcome, "gate", health_gate.fn, conn, env, vsn)
        outcome.result, outcome.detail = "upgraded", "provisioned"
        outcome.pid_after = read_node_pid.fn(conn, env, app)
        record.fn(conn, env, outcome, run_id)
        return outcome
    except (RemoteError, NodeDown) as e:
        outcome.result, outcome.detail = "failed", str(e)
        raise HostFailed(outcome) from None
    finally:
        conn.close()


@task(task_run_name="status-{host.name}", cache_policy=NO_CACHE)
def inspect_host(env: DeployEnvironment, host: Host, app: str, run_id: str) -> HostOutcome:
    """Read-only: the releases the node knows, which runs and which is
    permanent, the node's pid, and what the version endpoint answers."""
    outcome = HostOutcome(host.name, host.address)
    conn = _connect(env, host, outcome, unreachable="unreachable")
    try:
        state = read_releases.fn(conn, env, app)
        outcome.from_version = state.running
        outcome.to_version = state.permanent
        outcome.pid_before = outcome.pid_after = read_node_pid.fn(conn, env, app)
        answer = conn.run(cmd.health(env.app_port, env.health_path), timeout=10)
        said = answer.stdout.strip() if answer.exit_code == 0 else f"no answer (curl exit {answer.exit_code})"
        outcome.detail = (" ".join(f"{v}:{s}" for v, s in state.statuses.items()) + f"; endpoint: {said}")
        outcome.result = "answering" if said == state.running else "not answering"
        if outcome.result != "answering":
            raise HostFailed(outcome)
        return outcome
    except (RemoteError, NodeDown) as e:
        outcome.result, outcome.detail = "node down" if isinstance(e, NodeDown) else "failed", str(e)
        raise HostFailed(outcome) from None
    finally:
        conn.close()
