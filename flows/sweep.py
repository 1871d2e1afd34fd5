"""sweep_ingress: revoke expired SSH rules of ours (a second line of defence
behind the deploy's finally, for a deployer that was killed)."""
from __future__ import annotations

from prefect import flow, get_run_logger

from blocks import load_environment
from tasks.network import sweep_expired_ingress


@flow(name="sweep-ingress")
def sweep_ingress(environments: list[str]) -> dict[str, list[str]]:
    log = get_run_logger()
    revoked = {}
    for name in environments:
        rules = sweep_expired_ingress(load_environment(name))
        revoked[name] = [f"{r.cidr} ({r.description})" for r in rules]
        log.info("%s: %d expired rule(s) revoked", name, len(rules))
    return revoked
