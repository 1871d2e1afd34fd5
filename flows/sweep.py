"""sweep_ingress: revoke SSH rules that killed runs left open (a second line
of defence behind each run's finally and its cancellation/crash hooks)."""
from __future__ import annotations

from prefect import flow, get_run_logger

from blocks import BlockMissing, list_environments, load_environment
from hotdeploy import params
from tasks.lock import EnvironmentBusy, environment_lock, lock_is_held
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
