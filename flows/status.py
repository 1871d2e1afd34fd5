"""status: which version each host of an environment runs (read-only)."""
from __future__ import annotations

from prefect import flow

from blocks import load_environment
from tasks.hosts import inspect_host
from tasks.lock import environment_lock
from tasks.network import discover_hosts

from .fleet import check_deploy, revoke_this_runs_rules, run_on_fleet


@flow(name="status", on_cancellation=[revoke_this_runs_rules], on_crashed=[revoke_this_runs_rules])
def status(app: str, environment: str) -> list[dict]:
    """One row per host: the versions its node knows (current, permanent,
    old), its pid, and whether its version endpoint answers the running
    version. Opens SSH ingress like hot_deploy and always revokes it."""
    check_deploy(app, environment, version=None)
    env = load_environment(environment)
    with environment_lock(environment, env.lock_timeout_seconds):
        outcomes = run_on_fleet(env, discover_hosts(env), inspect_host, "status", app=app)
    return [o.as_row() for o in outcomes]
