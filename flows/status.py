"""status: which version each host of an environment runs (read-only)."""
from __future__ import annotations

from prefect import flow

from blocks import load_environment
from tasks.hosts import inspect_host
from tasks.network import discover_hosts

from .fleet import run_on_fleet


@flow(name="status")
def status(app: str, environment: str) -> list[dict]:
    """One row per host: the versions its node knows (current, permanent,
    old), its pid, and whether its version endpoint answers the running
    version. Opens SSH ingress like hot_deploy and always revokes it."""
    env = load_environment(environment)
    hosts = discover_hosts(env)
    outcomes = run_on_fleet(env, hosts, inspect_host, "status", app=app)
    return [o.as_row() for o in outcomes]
