"""The part every fleet flow shares: open SSH ingress for the deployer, run a
per-host task on all hosts in parallel (bounded), always revoke, summarize."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.context import get_run_context
from prefect.exceptions import Pause
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from blocks.environment import DeployEnvironment
from hotdeploy import params, quarantine
from hotdeploy.errors import KnownFailure, Outage
from hotdeploy.ingress import left_open
from hotdeploy.report import artifact_key, outcome_lines
from hotdeploy.rollout import may_continue, plan_shards, plan_waves
from hotdeploy.canary import FAIL, INCONCLUSIVE
from tasks.hosts import HostFailed, HostOutcome, gate_description

from . import guard as guard_stage
from .mapping import alike
from .guard import Guard
from tasks.network import (authorize_ingress, deployer_cidr, revoke_ingress,
                           revoke_rules_of_run)
from tasks.remote import Host
from tasks.shards import Sharding, cancel_shards_of, run_shard
from tasks.store import record_environment
from tasks.threads import together


PROGRESS_EVERY_S = 1.0


class FleetFailed(KnownFailure, RuntimeError):
    def __init__(self, outcomes: list[HostOutcome], left: list[str] = ()):
        bad = [o for o in outcomes if not o.ok and o.result != "not started"]
        held = [o for o in outcomes if o.result == "not started"]
        super().__init__(f"{len(bad)} of {len(outcomes)} host(s) did not finish: " +
                         "; ".join(f"{o.host}: {o.result}: {o.detail}" for o in bad) +
                         (f"; {len(held)} host(s) not started ({', '.join(o.host for o in held)})" if held else "") +
                         "".join(f"; and {x}" for x in left))
        self.outcomes = outcomes


class GuardFailed(FleetFailed):
    """The canary verdict, an approval or the stability window stopped the
    deploy: the hosts that had the release were taken back. CAUSE is the run's
    one line; QUARANTINE, why the version must not go out again."""
    def __init__(self, outcomes: list[HostOutcome], cause: str, left: list[str] = ()):
        super().__init__(outcomes, left)
        self.cause = cause
        self.quarantine = cause


def quarantine_reason(failure: FleetFailed) -> str | None:
    """Why a failed deploy puts its version in quarantine: the guard stopped
    it (canary, approval, stability window), or a host went back because the
    release failed there; None for a failure that is not the version's."""
    if isinstance(failure, GuardFailed):
        return failure.quarantine
    return quarantine.reason_from_hosts(failure.outcomes)


class CleanupFailed(Outage, RuntimeError):
    """Every host finished, but what follows them (the record, the revoke)
    failed on S3 or EC2: said with what the hosts did and what is left."""
    def __init__(self, outcomes: list[HostOutcome], left: list[str]):
        done = {}
        for o in outcomes:
            done[o.result] = done.get(o.result, 0) + 1
        super().__init__(", ".join(f"{n} host(s) {r}" for r, n in done.items()) + "; but " + "; and ".join(left))
        self.outcomes = outcomes


def revoke_this_runs_rules(flow, flow_run, state) -> None:
    """Cancellation and crash hook: revoke every SSH rule this run made (a
    run that is cancelled or crashes never reaches its finally)."""
    from prefect.logging.loggers import flow_run_logger

    from blocks import load_environment
    log = flow_run_logger(flow_run, flow)
    name = (flow_run.parameters or {}).get("environment")
    try:
        rules = revoke_rules_of_run(load_environment(name), str(flow_run.id))
        log.warning("%s: revoked %d SSH rule(s) of this run", state.name, len(rules))
    except Exception as e:  # the sweep and the next run under the lock clean up too
        log.error("%s: could not revoke this run's SSH rules on %s: %s", state.name, name, e)


def cancel_this_runs_shards(flow, flow_run, state) -> None:
    """Cancellation and crash hook of a deploy that shards: its shard runs
    still running are cancelled too (before the rule they use is revoked)."""
    from prefect.logging.loggers import flow_run_logger
    log = flow_run_logger(flow_run, flow)
    try:
        cancelled = cancel_shards_of(str(flow_run.id), f"the deploy run {flow_run.name} ended {state.name}")
        if cancelled:
            log.warning("%s: cancelled %d shard run(s): %s", state.name, len(cancelled), ", ".join(cancelled))
    except Exception as e:  # the shards then end on their own: their hosts' SSH fails once the rule is gone
        log.error("%s: could not cancel this run's shard runs: %s", state.name, e)


def current_run_id() -> str:
    ctx = get_run_context()
    return str(ctx.flow_run.id) if getattr(ctx, "flow_run", None) else "local"


@dataclass(frozen=True)
class Rollout:
    """How hosts are taken: CANARY alone first, then waves of WAVE_SIZE
    (hosts or a percentage); no new host starts once more than
    MAX_FAILED_HOSTS failed."""
    canary: int = 0
    wave_size: str = "100%"
    max_failed_hosts: int = 1_000_000

    @classmethod
    def of(cls, env: DeployEnvironment, canary: int | None = None, wave_size: str | None = None,
           max_failed_hosts: int | None = None) -> "Rollout":
        return cls(env.canary if canary is None else canary, env.wave_size if wave_size is None else wave_size,
                   env.max_failed_hosts if max_failed_hosts is None else max_failed_hosts)


ALL_AT_ONCE = Rollout()


def check_deploy(app: str, environment: str, store_block: str | None = None, version: str | None = "latest",
                 canary: int | None = None, wave_size: str | None = None,
                 max_failed_hosts: int | None = None) -> None:
    """Every parameter of a fleet flow, checked before anything runs."""
    params.app_name(app)
    params.block_name("environment", environment)
    if store_block is not None:
        params.block_name("store_block", store_block)
    if version is not None:
        params.version(version)
    params.rollout(canary, wave_size, max_failed_hosts)   # read-only flows (status): no reason to hold hosts back


def _map_bounded(env: DeployEnvironment, hosts: list[Host], per_host, args: dict, run_id: str,
                 title: str, rollout: Rollout, guard: Guard | None = None,
                 sharding: Sharding | None = None) -> tuple[list[HostOutcome], str | None]:
    """Map PER_HOST over HOSTS wave by wave (hotdeploy/rollout.py), with at
    most env.max_parallel at once inside a wave (a pool of our own: the
    flow's runner is fixed when the flow is defined), showing hosts done and
    the wave as a progress artifact in the UI. With GUARD (an upgrade): the
    canary wave is judged against baseline hosts sampled meanwhile, an
    approval may be asked, and a stability window may hold the commit
    (flows/guard.py). With SHARDING, a wave bigger than a shard runs as
    shards on the pool (tasks/shards.py). Returns the outcomes and, when the
    guard stopped the deploy, why."""
    log = get_run_logger()
    waves = plan_waves(len(hosts), rollout.canary, rollout.wave_size)
    progress = create_progress_artifact(0.0, key=artifact_key(title, "progress", env.environment_tag),
                                        description=f"{title}: hosts finished")
    outcomes: dict[int, HostOutcome] = {}
    shown_at = 0.0
    failed: list[HostOutcome] = []
    stopped: str | None = None
    with ThreadPoolTaskRunner(max_workers=min(env.max_parallel, len(hosts))) as runner:
        def all_so_far() -> tuple[list[HostOutcome], list[Host]]:
            done = sorted(outcomes)
            return [outcomes[i] for i in done], [hosts[i] for i in done]

        def settle(i: int, outcome: HostOutcome, number: int) -> None:
            nonlocal shown_at
            outcomes[i] = outcome
            outcome.wave = number
            if guard:
                guard_stage.event(f"host.{outcome.result.replace(' ', '_')}", guard, host=outcome.host,
                                  detail=outcome.detail, wave=number)
            if not outcome.ok:
                failed.append(outcome)
            # At most one update a second (each is an API call), and the last.
            if len(outcomes) == len(hosts) or time.monotonic() - shown_at >= PROGRESS_EVERY_S:
                update_progress_artifact(progress, 100.0 * len(outcomes) / len(hosts),
                                         description=f"{title}: {len(outcomes)} of {len(hosts)} hosts "
                                                     f"finished (wave {number} of {len(waves)})")
                shown_at = time.monotonic()

        for number, wave in enumerate(waves, 1):
            if stopped or not may_continue(len(failed), rollout.max_failed_hosts):
                why = stopped or (f"rollout stopped after {len(failed)} failed host(s), first {failed[0].host}: "
                                  f"{failed[0].result}")
                for i in (i for w in waves[number - 1:] for i in w):
                    outcomes[i] = HostOutcome(hosts[i].name, hosts[i].address, result="not started", detail=why)
                log.warning("%s: rollout stopped before wave %d of %d: %s", title, number, len(waves), why)
                break
            judged = guard is not None and number == 1 and rollout.canary > 0 and len(waves) > 1
            log.info("%s: wave %d of %d%s: %s", title, number, len(waves), " (canary)" if judged else "",
                     ", ".join(hosts[i].name for i in wave))
            wave_args = {**args, "commit": not (judged or guard.deferred)} if guard else args
            shards = plan_shards(wave, sharding.size, judged) if sharding else None
            if judged and guard.awaiting:
                # resumed after an approval: the canary was upgraded before the suspension
                for i, row in zip(wave, guard.awaiting.canary):
                    settle(i, HostOutcome(**row), number)
                stopped = _after_canary(runner, env, guard, [outcomes[i] for i in wave], [hosts[i] for i in wave],
                                        [], run_id, title)
                continue
            if shards:
                log.info("%s: wave %d as %d shard(s) of at most %d host(s) on the pool", title, number,
                         len(shards), sharding.size)
                futures = [runner.submit(run_shard, parameters={
                    "sharding": sharding, "hosts": [hosts[i] for i in shard], "run_id": run_id,
                    "shard": f"w{number}-s{n}", "commit": wave_args.get("commit", True)})
                    for n, shard in enumerate(shards, 1)]
            else:
                params = {"env": alike(env), "host": [hosts[i] for i in wave], "run_id": alike(run_id),
                          **{k: alike(v) for k, v in wave_args.items()}}
                futures = list(runner.map(per_host, params))
            index = {id(f): part for f, part in zip(futures, shards or [[i] for i in wave])}
            for future in as_completed(futures):
                part = index[id(future)]
                try:  # resolve every future: a failed host must fail the flow
                    got = future.result() if shards else [future.result()]
                except HostFailed as e:
                    got = [e.outcome]
                except Exception as e:  # a crash in our own code still names the host(s)
                    got = [HostOutcome(hosts[i].name, hosts[i].address, result="failed", detail=str(e)) for i in part]
                for i, outcome in zip(part, got):
                    settle(i, outcome, number)
            if judged and not failed:
                # the baseline: hosts of later waves, sampled with the canary, at the same time
                baseline = [hosts[i] for w in waves[1:] for i in w][:max(1, env.max_parallel - len(wave))]
                stopped = _after_canary(runner, env, guard, [outcomes[i] for i in wave], [hosts[i] for i in wave],
                                        baseline, run_id, title)
        if guard and guard.deferred and not stopped and not failed:
            done, where = all_so_far()
            stopped = guard_stage.watch(runner, env, guard, done, where, run_id)
        if guard and not stopped:
            # what is installed is made permanent (after a host failure too: as
            # without a guard, the hosts that passed keep the release)
            done, where = all_so_far()
            for bad in guard_stage.commit(runner, env, guard, done, where, run_id):
                stopped = stopped or f"{bad.host} could not be made permanent: {bad.detail}"
        if guard and stopped:
            done, where = all_so_far()
            guard_stage.take_back(runner, env, guard, done, where, run_id, stopped)
    if len(outcomes) < len(hosts) or shown_at == 0.0:
        update_progress_artifact(progress, 100.0 * len(outcomes) / len(hosts),
                                 description=f"{title}: {len(outcomes)} of {len(hosts)} hosts finished")
    return [outcomes[i] for i in range(len(hosts))], stopped


def _after_canary(runner, env: DeployEnvironment, guard: Guard, canary: list[HostOutcome], where: list[Host],
                  baseline: list[Host], run_id: str, title: str) -> str | None:
    """The canary's verdict, and the approval the environment asks for: why
    the deploy stops, or None to go on (the canary made permanent unless a
    stability window holds it)."""
    if guard.awaiting:
        approved, why = guard_stage.answered(guard)
        if not approved:
            return why
    else:
        verdict = guard_stage.canary_verdict(runner, env, guard, canary, where, baseline, run_id, title)
        if verdict.outcome == FAIL:
            return verdict.line()
        ask = guard.approval or (verdict.outcome == INCONCLUSIVE and guard.inconclusive == "ask")
        if verdict.outcome == INCONCLUSIVE and guard.inconclusive == "stop":
            return verdict.line()
        if ask:
            approved, why = guard_stage.ask_approval(env, guard, verdict, canary, run_id)
            if not approved:
                return why
    if not guard.deferred:
        for bad in guard_stage.commit(runner, env, guard, canary, where, run_id):
            return f"{bad.host} could not be made permanent: {bad.detail}"
    return None


def _shown(summary) -> None:
    """The summary table's end: a failure to write it is said, and fails
    nothing (each host's outcome is in the log and the run's result)."""
    try:
        summary()
    except Exception as e:
        get_run_logger().error("the summary table could not be written (%s); each host's outcome is in the "
                               "log above and in the run's result", str(e).splitlines()[0] if str(e) else
                               type(e).__name__)


def _summary(env: DeployEnvironment, title: str, note: str, outcomes: list[HostOutcome]) -> None:
    gate = gate_description(env)
    create_table_artifact(
        [{"host": o.host, "address": o.address, "wave": o.wave, "shard": o.shard or "-",
          "from": o.from_version or "-", "to": o.to_version,
          "result": o.result, "detail": o.detail, "pid before": o.pid_before, "pid after": o.pid_after,
          "down s": o.down_seconds, "config": o.config,
          "sent KB": round(o.sent_bytes / 1024, 1),
          "seconds": round(sum(o.seconds.values()), 2)}
         for o in outcomes],
        key=artifact_key(title, env.environment_tag),
        description=f"{title}: one row per host; gate: {gate}" + (f". {note}" if note else ""))


@dataclass(frozen=True)
class Recording:
    """Where a fleet flow records what runs on the environment's hosts:
    `<app>/environments/<environment>.json` in STORE. WHOLE_FLEET: the run
    covers every host EC2 lists (hosts no longer listed leave the record)."""
    store: object
    app: str
    environment: str
    whole_fleet: bool = True


def run_on_shard(env: DeployEnvironment, hosts: list[Host], per_host, title: str, run_id: str,
                 **args) -> list[HostOutcome]:
    """PER_HOST on a shard's HOSTS at once (at most env.max_parallel), within
    the SSH rule the deploy run RUN_ID opened; summarized like a fleet run.
    The deploy run keeps the lock, the waves, the guard and the record."""
    outcomes, _ = _map_bounded(env, hosts, per_host, args, run_id, title, ALL_AT_ONCE)
    _summary(env, title, "", outcomes)
    for line in outcome_lines(outcomes):
        get_run_logger().info("%s", line)
    return outcomes


def _record(recording: Recording, title: str, run_id: str, outcomes: list[HostOutcome]) -> str | None:
    """Rewrite the environment record from what the nodes answered in this
    run (merged with the last record for hosts it could not read). A failure
    here is returned, never raised: the hosts' outcomes come first."""
    from datetime import datetime, timezone
    try:
        seen = [{"host": o.host, "address": o.address, "running": o.running, "permanent": o.permanent,
                 "config": o.config, "result": o.result} for o in outcomes]
        record_environment(recording.store, recording.app, recording.environment, title, run_id,
                           datetime.now(timezone.utc).isoformat(timespec="seconds"), quote(seen),
                           recording.whole_fleet)      # quoted: a row per host, nothing for Prefect to look into
        return None
    except Exception as e:
        why = (f"what runs on {recording.environment} could not be recorded in the store ({e}): the next fleet "
               "flow on it (status is enough) records it from the hosts")
        get_run_logger().error("%s", why)
        return why


def _revoke(env: DeployEnvironment, rule, hosts_done: bool) -> str | None:
    """Revoke RULE; once the hosts are done, a failure is returned (the run
    says it with the hosts' outcomes), never raised."""
    try:
        revoke_ingress(env, rule)
        return None
    except Exception as e:
        if not hosts_done or rule is None:
            raise
        why = left_open(rule, env.security_group_id, str(e).splitlines()[0] if str(e) else type(e).__name__)
        get_run_logger().error("%s", why)
        return why


def run_on_fleet(env: DeployEnvironment, hosts: list[Host], per_host, title: str, note: str = "",
                 rollout: Rollout = ALL_AT_ONCE, recording: Recording | None = None, guard: Guard | None = None,
                 sharding: Sharding | None = None, **args) -> list[HostOutcome]:
    """PER_HOST(env=, host=, run_id=, **args) on every host, within a temporary
    tcp/22 rule that is revoked whatever happens. Raises FleetFailed after all
    hosts finished if any did not end where it should. With RECORDING, what
    the nodes answered is recorded in the store (before the revoke). When S3
    or EC2 fail after the hosts finished, the run still ends saying what each
    host did, and what was left: no record (the next run writes it), a rule
    open until its expiry."""
    log = get_run_logger()
    run_id = current_run_id()
    rule = None
    outcomes: list[HostOutcome] = []
    left: list[str] = []
    stopped = None
    try:
        # under the environment's lock: any other run's rule is dead, and goes first
        rule = authorize_ingress(env, deployer_cidr(env, hosts[0]), run_id)
        outcomes, stopped = _map_bounded(env, hosts, per_host, args, run_id, title, rollout, guard, sharding)
    except Pause:       # suspended for an approval: its rule is revoked already (flows/guard.py)
        rule = None
        raise
    finally:
        # The per-host outcomes are shown first: an error in the cleanup
        # (EC2 unreachable at revoke) must not hide what happened on the hosts,
        # nor the error that stopped the run before they finished. The summary
        # table, the record and the revoke go out at once (three services, one
        # wait), and each ends whatever the others do.
        failing = sys.exc_info()[1] is not None
        for line in outcome_lines(outcomes):
            log.info("%s", line)
        ending = {"revoke": lambda: _revoke(env, rule, bool(outcomes) or failing)}
        if outcomes:
            ending["summary"] = lambda: _summary(env, title, note, outcomes)
            if recording:
                ending["record"] = lambda: _record(recording, title, run_id, outcomes)
        ended = together(ending)
        if "summary" in ended:
            _shown(ended["summary"])
        left += [w for w in [ended["record"]() if "record" in ended else None, ended["revoke"]()] if w]
    if note:
        log.warning("%s", note) if note.startswith("UNREHEARSED") else log.info("%s", note)
    if stopped:
        raise GuardFailed(outcomes, f"{stopped}: every host that had {guard.version} was taken back", left)
    if any(not o.ok for o in outcomes):
        raise FleetFailed(outcomes, left)
    if left:
        raise CleanupFailed(outcomes, left)
    return outcomes
