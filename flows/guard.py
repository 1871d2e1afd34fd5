"""What watches a deploy beyond each host's own gate (the mechanics the fleet
runner calls between waves):

- the canary verdict: the canary hosts' soak signals against baseline hosts
  (not upgraded yet) sampled in the same window by the same probes
  (hotdeploy/canary.py); fail takes the canary back;
- an approval in the UI after the canary (a Prefect pause with a form);
- a stability window: every host keeps the new release installed but not
  permanent, the environment is watched, and then it is made permanent
  everywhere, or, if a node restarted meanwhile (it comes back on the old
  release by release_handler's own rule), the whole environment goes back;
- events for each verdict, pause and take-back, for a user's automations.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.input import RunInput

from blocks.environment import DeployEnvironment
from hotdeploy.awaiting import Awaiting
from hotdeploy.canary import FAIL, Limits, Verdict, judge, table
from hotdeploy.report import artifact_key, markdown_table
from tasks.hosts import DowngradePlan, HostFailed, HostOutcome, commit_host, inspect_host, observe_host, upgrade_host
from tasks.remote import Host

from .mapping import alike

WATCH_EVERY_S = 5.0


@dataclass(frozen=True)
class Guard:
    """How one deploy is watched (from the environment block), and how its
    hosts are taken back (to what each ran before)."""
    app: str
    version: str
    environment: str
    limits: Limits
    inconclusive: str             # continue | stop | ask
    approval: bool
    approval_timeout_s: float
    window_s: float               # commit_after_seconds
    soak_s: float                 # the soak: the canary verdict's window (2 s at least)
    down_to: tuple[str, ...]      # where the release's relup goes down to (hot take-back)
    lock: str = ""                # the environment's block name: its lock
    hold_s: float = 0.0           # how long an approval waits in this process before the run suspends
    awaiting: Awaiting | None = None   # this run resumed after a suspension: its canary and its answer's key

    @classmethod
    def of(cls, env: DeployEnvironment, app: str, version: str, down_to: list[str], lock: str = "",
           awaiting: Awaiting | None = None) -> "Guard":
        return cls(app, version, env.environment_tag,
                   Limits(env.canary_latency_ratio, env.canary_latency_slack_ms, env.canary_error_rate_diff,
                          env.canary_process_growth, env.canary_min_probes),
                   env.canary_inconclusive, env.approval, env.approval_timeout_seconds, env.commit_after_seconds,
                   env.health_soak_seconds, tuple(down_to), lock, env.approval_hold_seconds, awaiting)

    @property
    def deferred(self) -> bool:
        """Whether upgraded hosts wait to be made permanent."""
        return self.window_s > 0


class Approval(RunInput):
    """The form an approval shows in the UI, after the canary."""
    approve: bool = False
    comment: str = ""


def event(name: str, guard: Guard, host: str | None = None, **payload) -> None:
    """A Prefect event (hotdeploy.<name>) about this deploy: automations can
    notify or page on it."""
    from prefect.events import emit_event
    resource = ({"prefect.resource.id": f"hotdeploy.host.{host}", "prefect.resource.name": host} if host else
                {"prefect.resource.id": f"hotdeploy.environment.{guard.environment}",
                 "prefect.resource.name": guard.environment})
    related = [{"prefect.resource.id": f"hotdeploy.app.{guard.app}", "prefect.resource.role": "app",
                "hotdeploy.version": guard.version},
               {"prefect.resource.id": f"hotdeploy.environment.{guard.environment}",
                "prefect.resource.role": "environment"}]
    emit_event(event=f"hotdeploy.{name}", resource=resource, related=related,
               payload={"app": guard.app, "version": guard.version, "environment": guard.environment, **payload})


def _resolve(futures: list, hosts: list[Host]) -> list[HostOutcome]:
    out = []
    for future, host in zip(futures, hosts):
        try:
            out.append(future.result())
        except HostFailed as e:
            out.append(e.outcome)
        except Exception as e:
            out.append(HostOutcome(host.name, host.address, result="failed", detail=str(e)))
    return out


def canary_verdict(runner, env: DeployEnvironment, guard: Guard, canary: list[HostOutcome], where: list[Host],
                   baseline: list[Host], run_id: str, title: str) -> Verdict:
    """Sample the canary hosts (on the new release) and BASELINE hosts (still
    on the old one) in the same window, by the same probes; judge; show the
    figures side by side (a table artifact) and send the verdict as an event."""
    log = get_run_logger()
    upgraded = [h for o, h in zip(canary, where) if o.ok]
    window = max(guard.soak_s, 2.0)

    def sample() -> tuple[Verdict, list[HostOutcome], list[HostOutcome]]:
        futures = list(runner.map(observe_host, {"env": alike(env), "host": upgraded + baseline,
                                                 "app": alike(guard.app), "window_seconds": alike(window),
                                                 "run_id": alike(run_id)}))
        seen = _resolve(futures, upgraded + baseline)
        mine = [o for o in seen[:len(upgraded)] if o.result == "observed" and o.running == guard.version]
        theirs = [o for o in seen[len(upgraded):] if o.result == "observed"]
        return judge([o.signals for o in mine], [o.signals for o in theirs], guard.limits), mine, theirs

    verdict, mine, theirs = sample()
    confirmed = ""
    if verdict.outcome == FAIL:
        # A busy machine can slow one host for a window; a real regression
        # shows in the next one too. Only a confirmed fail takes the canary back.
        log.warning("%s: sampling a second window to confirm", verdict.line())
        first = verdict
        verdict, mine, theirs = sample()
        confirmed = (", confirmed in a second window" if verdict.outcome == FAIL
                     else f", not confirmed in a second window (the first: {first.line()})")
    create_table_artifact(table(verdict), key=artifact_key(title, "canary", env.environment_tag),
                          description=f"{verdict.line()} ({', '.join(o.host for o in mine) or 'no canary'} against "
                                      f"{', '.join(o.host for o in theirs) or 'no baseline'}, {window:g} s"
                                      f"{confirmed})")
    (log.warning if verdict.outcome == FAIL else log.info)("%s%s", verdict.line(), confirmed)
    event(f"canary.{verdict.outcome}", guard, reasons=verdict.reasons, figures=verdict.figures)
    return verdict


def ask_approval(env: DeployEnvironment, guard: Guard, verdict: Verdict, canary: list[HostOutcome],
                 run_id: str) -> tuple[bool, str]:
    """Wait for an approval in the UI (the canary's figures in the form);
    returns (approved, why). A timeout is a refusal. The wait holds this
    process for guard.hold_s; past it, a run from a deployment suspends (see
    suspend_for_approval) and, resumed, reads its answer in answered()."""
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run
    log = get_run_logger()
    rows = [[r["signal"], r["canary"], r["baseline"]] for r in table(verdict)]
    description = (f"### Approve {guard.app} {guard.version} on {guard.environment}?\n\n{verdict.line()}\n\n"
                   + markdown_table(["signal", "canary", "baseline"], rows) +
                   "\n\nApprove to upgrade the other hosts; leave it unticked to take the canary back.")
    create_markdown_artifact(description, key=artifact_key("approval", guard.environment),
                             description="waiting for an approval")
    log.warning("waiting for an approval of %s %s on %s (up to %d s): approve or take back at %s",
                guard.app, guard.version, guard.environment, guard.approval_timeout_s, _run_url())
    event("approval.waiting", guard, verdict=verdict.outcome)
    hold = guard.approval_timeout_s if not _may_suspend() else min(guard.hold_s, guard.approval_timeout_s)
    started = time.monotonic()
    try:
        if hold < 1:
            raise FlowPauseTimeout
        answer = pause_flow_run(wait_for_input=Approval.with_initial_data(description=description, approve=False),
                                timeout=int(hold), poll_interval=2)
    except FlowPauseTimeout:
        if hold >= 1:
            _running_again()
        if hold < guard.approval_timeout_s:
            suspend_for_approval(env, guard, description, canary,
                                 guard.approval_timeout_s - (time.monotonic() - started), run_id)
        event("approval.timeout", guard)
        return False, f"no approval within {guard.approval_timeout_s:g} s"
    return _said(guard, answer)


def _said(guard: Guard, answer: Approval) -> tuple[bool, str]:
    event("approval.given" if answer.approve else "approval.refused", guard, comment=answer.comment)
    if answer.approve:
        get_run_logger().info("approved%s", f": {answer.comment}" if answer.comment else "")
        return True, answer.comment
    return False, "approval refused" + (f": {answer.comment}" if answer.comment else "")


def _may_suspend() -> bool:
    """Only a run of a deployment can be suspended (a worker starts it again),
    and not one inside another flow (a rehearsal's deploy)."""
    from prefect.context import FlowRunContext
    run = FlowRunContext.get().flow_run
    return run.deployment_id is not None and run.parent_task_run_id is None


def suspend_for_approval(env: DeployEnvironment, guard: Guard, description: str, canary: list[HostOutcome],
                         left_s: float, run_id: str) -> None:
    """End this run's process until the approval is answered: the lock is
    kept past the deadline (no other deploy comes between the canary and the
    rest), what the resumed run needs is kept beside it, a sweep run is
    scheduled at the deadline to answer a timeout, and the SSH rule is
    revoked first (the resumed run opens its own; nothing of this process
    runs once it is Suspended). Raises Prefect's Pause: the run is
    Suspended, its worker slot free."""
    from datetime import datetime, timezone

    from prefect.flow_runs import suspend_flow_run

    from hotdeploy.awaiting import Awaiting, deadline, kept_lease_seconds
    from tasks.awaiting import schedule_sweep, write_awaiting
    from tasks.lock import MAX_LEASE_SECONDS, keep_lock
    from tasks.network import revoke_rules_of_run
    log = get_run_logger()
    for rule in revoke_rules_of_run(env, run_id):
        log.info("revoked tcp/%d from %s while suspended", rule.port, rule.cidr)
    now = datetime.now(timezone.utc)
    lease = keep_lock(guard.lock, kept_lease_seconds(left_s, MAX_LEASE_SECONDS))
    key = "approval"       # input keys take letters, digits and dashes: not a version
    until = deadline(now, left_s)
    write_awaiting(Awaiting(run_id, guard.app, guard.version, guard.lock, lease, key, until,
                            guard.approval_timeout_s, tuple(o.as_row() for o in canary)))
    sweep = schedule_sweep(guard.lock, datetime.fromisoformat(until))
    log.warning("suspending until the approval is answered (by %s): this run's process ends and its worker slot "
                "is free; environment %s stays locked. %s", until, guard.lock,
                f"A sweep run at {until} takes the canary back if nobody answers" if sweep else
                "No sweep-ingress/all deployment: a sweep run after the deadline takes the canary back")
    event("approval.suspended", guard, deadline=until)
    suspend_flow_run(wait_for_input=Approval.with_initial_data(description=description, approve=False), key=key,
                     timeout=None)


def answered(guard: Guard) -> tuple[bool, str]:
    """The answer a resumed run was given (approved, why): an answer after
    the deadline is a timeout, whoever gave it."""
    from datetime import datetime, timezone

    from prefect.flow_runs import suspend_flow_run

    from tasks.awaiting import clear_awaiting
    awaiting = guard.awaiting
    answer = suspend_flow_run(wait_for_input=Approval, key=awaiting.key)   # fired already: returns the input
    clear_awaiting(guard.lock)
    if awaiting.expired(datetime.now(timezone.utc)):
        event("approval.timeout", guard)
        return False, f"no approval within {awaiting.timeout_s:g} s"
    return _said(guard, answer)


def _running_again() -> None:
    """After a pause that timed out, put this run back to Running (forced):
    the server refuses any state from a pause past its deadline and fails the
    run with its own words ("never resumed"), which would hide what the run
    says and does next (the take back, the refusal's line)."""
    from prefect.client.orchestration import get_client
    from prefect.context import get_run_context
    from prefect.states import Running
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(get_run_context().flow_run.id, Running(), force=True)


def _run_url() -> str:
    """Where the UI shows this flow run (its Resume button and form)."""
    from prefect.context import get_run_context
    from prefect.settings import PREFECT_UI_URL
    run_id = get_run_context().flow_run.id
    return f"{PREFECT_UI_URL.value() or '<the Prefect UI>'}/runs/flow-run/{run_id}"


def take_back(runner, env: DeployEnvironment, guard: Guard, outcomes: list[HostOutcome], hosts: list[Host],
              run_id: str, why: str) -> None:
    """Each host of OUTCOMES that took the release back to what it ran
    before (hot where the relup goes down, else a restart back); its outcome
    becomes `taken back`, or `failed` if that did not work."""
    log = get_run_logger()
    moved = [(o, h) for o, h in zip(outcomes, hosts) if o.result in ("upgraded", "installed", "restarted")]
    if not moved:
        return
    plan = DowngradePlan(guard.app, "per-host", {guard.version: list(guard.down_to)},
                         {o.host: o.from_version for o, _ in moved if o.from_version}, {}, "auto")
    futures = list(runner.map(upgrade_host, {"env": alike(env), "host": [h for _, h in moved],
                                             "plan": alike(plan), "run_id": alike(run_id)}))
    for (o, _), back in zip(moved, _resolve(futures, [h for _, h in moved])):
        done = back.result in ("downgraded", "restarted", "already running")
        o.result = "taken back" if done else "failed"
        o.detail = f"{why}; " + (f"taken back to {back.running}" if done else f"taking it back failed: {back.detail}")
        o.running, o.permanent, o.pid_after = back.running, back.permanent, back.pid_after
        log.warning("%s: %s", o.host, o.detail)
        event("host.taken_back" if done else "host.failed", guard, host=o.host, detail=o.detail)


def commit(runner, env: DeployEnvironment, guard: Guard, outcomes: list[HostOutcome], hosts: list[Host],
           run_id: str) -> list[HostOutcome]:
    """Make the release permanent on every host that has it installed; the
    outcomes of the hosts where that failed."""
    pending = [(o, h) for o, h in zip(outcomes, hosts) if o.result == "installed"]
    if not pending:
        return []
    futures = list(runner.map(commit_host, {"env": alike(env), "host": [h for _, h in pending],
                                            "app": alike(guard.app), "version": alike(guard.version),
                                            "run_id": alike(run_id)}))
    failed = []
    for (o, _), done in zip(pending, _resolve(futures, [h for _, h in pending])):
        if done.result == "upgraded":
            o.result, o.permanent = "upgraded", done.permanent
            o.detail = o.detail.replace("; not permanent yet", "")
        else:
            failed.append(done)
    return failed


def watch(runner, env: DeployEnvironment, guard: Guard, outcomes: list[HostOutcome], hosts: list[Host],
          run_id: str) -> str | None:
    """The stability window: every WATCH_EVERY_S, ask each upgraded node
    what it runs and its OS pid; a node that restarted (another pid) or runs
    something else ends the window. Returns why, or None when it held."""
    log = get_run_logger()
    watched = [(o, h) for o, h in zip(outcomes, hosts) if o.result in ("installed", "restarted", "upgraded")]
    log.info("stability window: %d host(s) watched for %g s before the release is made permanent",
             len(watched), guard.window_s)
    event("window.started", guard, seconds=guard.window_s)
    until = time.monotonic() + guard.window_s
    while time.monotonic() < until:
        time.sleep(min(WATCH_EVERY_S, max(0.0, until - time.monotonic())))
        futures = list(runner.map(inspect_host, {"env": alike(env), "host": [h for _, h in watched],
                                                 "app": alike(guard.app), "run_id": alike(run_id)}))
        for (o, _), now in zip(watched, _resolve(futures, [h for _, h in watched])):
            if now.running != guard.version or (now.pid_after and o.pid_after and now.pid_after != o.pid_after):
                why = (f"{o.host} restarted during the stability window (pid {o.pid_after} -> {now.pid_after}) and "
                       f"runs {now.running or 'nothing'}" if now.running else
                       f"{o.host} stopped answering during the stability window: {now.detail}")
                log.warning("stability window broken: %s", why)
                event("window.broken", guard, host=o.host, detail=why)
                return why
    return None
