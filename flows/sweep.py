"""sweep_ingress: revoke SSH rules that killed runs left open (a second line
of defence behind each run's finally and its cancellation/crash hooks), and
answer the approvals nobody answered by their deadline."""
from __future__ import annotations

from datetime import datetime, timezone

from prefect import flow, get_run_logger

from blocks import BlockMissing, list_environments, load_environment
from hotdeploy import params
from hotdeploy.awaiting import RESUME, WAIT, sweep_action
from tasks.awaiting import answer_timeout, clear_awaiting, read_awaiting, run_state
from tasks.lock import EnvironmentBusy, environment_lock, lock_is_held, release_kept_lock
from tasks.network import revoke_rules_of_dead_runs

from .fleet import current_run_id
from .outcome import explained


@flow(name="sweep-ingress")
@explained
def sweep_ingress(environments: list[str] | None = None, lock_wait_seconds: float = 10) -> dict[str, list[str]]:
    """Revoke the SSH rules that killed runs left open, in every environment.

    For each environment, take its deploy lock and revoke our rules of other
    runs: holding the lock, no other run is live there, so their rules were
    left by killed runs. An environment whose lock a deploy holds is skipped
    (its rule is its own), and so is a name with no block, each with a log line.
    A deploy suspended for an approval past its deadline is resumed with a
    refusal: it takes its canary back.

    Args:
        environments: hotdeploy-environment block names; empty: every one there is
        lock_wait_seconds: how long to wait for an environment's lock before skipping it
    """
    for name in environments or []:
        params.block_name("environment", name)
    log = get_run_logger()
    revoked: dict[str, list[str]] = {}
    for name in environments or list_environments():
        try:
            env = load_environment(name)
        except BlockMissing:
            log.warning("%s: no hotdeploy-environment block of that name: skipped", name)
            continue
        if not answer_awaiting(name):
            continue
        try:
            if lock_is_held(name):
                raise EnvironmentBusy(name)
            with environment_lock(name, lock_wait_seconds):
                rules = revoke_rules_of_dead_runs(env, current_run_id())
        except EnvironmentBusy:
            log.info("%s: a run holds its deploy lock (its rule is its own): skipped", name)
            continue
        revoked[name] = [f"{r.cidr} ({r.description})" for r in rules]
        log.info("%s: %d rule(s) of dead runs revoked", name, len(rules))
    return revoked


def answer_awaiting(environment: str) -> bool:
    """A deploy suspended for an approval on ENVIRONMENT: past its deadline,
    resume it with a refusal (it takes its canary back, and frees the lock);
    if its run ended some other way (cancelled while suspended), free the lock
    it kept. Whether the environment's rules are to be swept now (not while a
    suspended run holds it)."""
    log = get_run_logger()
    awaiting = read_awaiting(environment)
    if awaiting is None:
        return True
    state = run_state(awaiting.run_id)
    action = sweep_action(awaiting, state, datetime.now(timezone.utc))
    if action == RESUME:
        answer_timeout(awaiting)
        log.warning("%s: no approval by its deadline: %s resumed with a refusal (it takes its canary back)",
                    environment, awaiting.line())
        return False
    if action == WAIT:
        log.info("%s: %s: skipped", environment, awaiting.line())
        return False
    release_kept_lock(awaiting.lease_id)
    clear_awaiting(environment)
    log.warning("%s: the run that waited for an approval ended %s without resuming: its lock is freed; its canary "
                "(%s) keeps %s installed but not permanent (a restart boots the release before it): deploy again "
                "or roll back", environment, state or "(gone)", ", ".join(h["host"] for h in awaiting.canary),
                awaiting.version)
    return True
