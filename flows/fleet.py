"""The part every fleet flow shares: open SSH ingress for the deployer, run a
per-host task on all hosts in parallel (bounded), always revoke, summarize."""
from __future__ import annotations

import time

from prefect import get_run_logger, unmapped
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.context import get_run_context
from prefect.task_runners import ThreadPoolTaskRunner

from blocks.environment import DeployEnvironment
from tasks.hosts import HostFailed, HostOutcome
from tasks.network import authorize_ingress, deployer_cidr, revoke_ingress
from tasks.remote import Host


PROGRESS_EVERY_S = 1.0


class FleetFailed(RuntimeError):
    def __init__(self, outcomes: list[HostOutcome]):
        bad = [o for o in outcomes if not o.ok]
        super().__init__(f"{len(bad)} of {len(outcomes)} host(s) did not finish: " +
                         "; ".join(f"{o.host}: {o.result}: {o.detail}" for o in bad))
        self.outcomes = outcomes


def _artifact_key(title: str, env: DeployEnvironment) -> str:
    return f"{title}-{env.environment_tag}".lower().replace("_", "-").replace(" ", "-")


def current_run_id() -> str:
    ctx = get_run_context()
    return str(ctx.flow_run.id) if getattr(ctx, "flow_run", None) else "local"


def _map_bounded(env: DeployEnvironment, hosts: list[Host], per_host, args: dict, run_id: str,
                 title: str) -> list[HostOutcome]:
    """Map PER_HOST over HOSTS with at most env.max_parallel at once (a pool
    of our own: the flow's runner is fixed when the flow is defined), showing
    how many hosts are done as a progress artifact in the UI."""
    params = {"env": unmapped(env), "host": hosts, "run_id": unmapped(run_id),
              **{k: unmapped(v) for k, v in args.items()}}
    progress = create_progress_artifact(0.0, key=_artifact_key(title + "-progress", env),
                                        description=f"{title}: hosts finished")
    outcomes: dict[int, HostOutcome] = {}
    shown_at = time.monotonic()
    with ThreadPoolTaskRunner(max_workers=min(env.max_parallel, len(hosts))) as runner:
        futures = list(runner.map(per_host, params))
        index = {id(f): i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            i = index[id(future)]
            try:  # resolve every future: a failed host must fail the flow
                outcomes[i] = future.result()
            except HostFailed as e:
                outcomes[i] = e.outcome
            except Exception as e:  # a crash in our own code still names the host
                outcomes[i] = HostOutcome(hosts[i].name, hosts[i].address, result="failed", detail=str(e))
            # At most one update a second (each is an API call), and the last.
            if len(outcomes) == len(hosts) or time.monotonic() - shown_at >= PROGRESS_EVERY_S:
                update_progress_artifact(progress, 100.0 * len(outcomes) / len(hosts),
                                         description=f"{title}: {len(outcomes)} of {len(hosts)} hosts finished")
                shown_at = time.monotonic()
    return [outcomes[i] for i in range(len(hosts))]


def _summary(env: DeployEnvironment, title: str, note: str, outcomes: list[HostOutcome]) -> None:
    create_table_artifact(
        [{"host": o.host, "address": o.address, "from": o.from_version, "to": o.to_version,
          "result": o.result, "detail": o.detail, "pid before": o.pid_before, "pid after": o.pid_after,
          "sent KB": round(o.sent_bytes / 1024, 1),
          "seconds": round(sum(o.seconds.values()), 2)}
         for o in outcomes],
        key=_artifact_key(title, env),
        description=f"{title}: one row per host" + (f". {note}" if note else ""))


def run_on_fleet(env: DeployEnvironment, hosts: list[Host], per_host, title: str, note: str = "",
                 **args) -> list[HostOutcome]:
    """PER_HOST(env=, host=, run_id=, **args) on every host, within a temporary
    tcp/22 rule that is revoked whatever happens. Raises FleetFailed after all
    hosts finished if any did not end where it should."""
    log = get_run_logger()
    run_id = current_run_id()
    rule = None
    outcomes: list[HostOutcome] = []
    try:
        rule = authorize_ingress(env, deployer_cidr(env, hosts[0]), run_id)
        outcomes = _map_bounded(env, hosts, per_host, args, run_id, title)
    finally:
        # The per-host outcomes are shown first: an error in the cleanup
        # (EC2 unreachable at revoke) must not hide what happened on the hosts.
        if outcomes:
            _summary(env, title, note, outcomes)
            for o in outcomes:
                log.info("%s: %s -> %s: %s %s", o.host, o.from_version, o.to_version, o.result, o.detail)
        revoke_ingress(env, rule)
    if note:
        log.warning("%s", note) if note.startswith("UNREHEARSED") else log.info("%s", note)
    if any(not o.ok for o in outcomes):
        raise FleetFailed(outcomes)
    return outcomes
