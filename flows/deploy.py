"""hot_deploy: upgrade every host of an environment to a release, in place
by a hot upgrade where the host's version allows it, else by a rolling
restart (the seed's steps 7-8: temporary ingress, hosts by EC2 tags,
upgrade.sh)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import flow

from blocks import DEFAULT_STORE_BLOCK, load_environment, load_package_store
from hotdeploy import params, quarantine
from hotdeploy.awaiting import Awaiting, canary_first
from hotdeploy.edges import RESTART, read_edges
from hotdeploy.hostplan import refuse_restarts
from hotdeploy.quarantine import quarantine_gate
from hotdeploy.rehearsal import rehearsal_gate
from tasks.hosts import plan_host, upgrade_host, upgrade_plan
from tasks.awaiting import read_awaiting
from tasks.lock import environment_lock
from tasks.network import FleetReadAhead
from tasks.shards import Sharding
from tasks.store import put_quarantine, read_deploy_inputs
from tasks.workspace import refuse_unsafe_distribution

from .fleet import (FleetFailed, Recording, Rollout, cancel_this_runs_shards, check_deploy, current_run_id,
                    quarantine_reason, revoke_this_runs_rules, run_on_fleet)
from .guard import Guard
from .outcome import explained


@flow(name="hot-deploy", on_cancellation=[cancel_this_runs_shards, revoke_this_runs_rules],
      on_crashed=[cancel_this_runs_shards, revoke_this_runs_rules])
@explained
def hot_deploy(app: str, environment: str, version: str = "latest",
               store_block: str = DEFAULT_STORE_BLOCK, allow_unrehearsed: bool = False,
               canary: int | None = None, wave_size: str | None = None,
               max_failed_hosts: int | None = None, strategy: str = "auto", dry_run: bool = False,
               allow_quarantined: bool = False) -> list[dict]:
    """Upgrade an app on an environment's hosts, wave by wave: hot where it can, by a restart where it must.

    Fails if any host did not end on the version. An environment that
    requires rehearsal refuses a version that has not passed one.

    Args:
        app: the release name, e.g. example_app
        environment: the hotdeploy-environment block, e.g. production
        version: a published version, or latest (the store's VERSION pointer)
        store_block: the S3Bucket block of the package store
        allow_unrehearsed: deploy even if the version never passed a rehearsal (said in the summary)
        canary: hosts upgraded first, alone (empty: the environment's setting)
        wave_size: hosts per wave after the canary, a number or a percentage (empty: the environment's)
        max_failed_hosts: once more hosts failed, no new host starts (empty: the environment's)
        strategy: auto (hot where the host's version allows it, else a restart), hot (refuse hosts that would need a restart), restart (every host)
        dry_run: only say, per host, what runs, hot or restart and why, the package and the wave; change nothing
        allow_quarantined: deploy a version that failed a canary, a gate, a stability window or an approval before
    """
    check_deploy(app, environment, store_block, version, canary, wave_size, max_failed_hosts)
    params.strategy(strategy)
    env = load_environment(environment)
    fleet = FleetReadAhead(env)        # EC2 is read beside everything up to the lock
    # a run that suspended for an approval starts again from here: it goes on after its canary
    resumed = resumed_run(env, environment, dry_run)
    if resumed:
        version, canary = resumed.version, len(resumed.canary)
    store = load_package_store(store_block)
    read = read_deploy_inputs(store, app, version, environment, env.requires_rehearsal)
    vsn, manifest, record = read.version, read.manifest, read.record
    note = rehearsal_gate(app, vsn, env.requires_rehearsal, read.rehearsal, allow_unrehearsed)
    note = "; ".join(n for n in (note, quarantine_gate(app, vsn, read.quarantine, allow_quarantined)) if n)
    restart_edges = {v: e.reasons for v, e in read_edges(manifest).items() if e.strategy == RESTART}
    if strategy == "hot":
        refuse_restarts(record, vsn, manifest.get("up_from", []), restart_edges)
    with tempfile.TemporaryDirectory(prefix="hotdeploy-ship-") as tmp:
        # the full tarball only for hosts that need it; its vm.args is the upgrade package's too
        plan = upgrade_plan(store, app, read, strategy, Path(tmp))
        refuse_unsafe_distribution(plan.package.path if plan.package else plan.release.tarball_path(), app, vsn,
                                   env.distribution == "cluster", environment)
        # waves bigger than shard_size run as runs of deploy-shard/<environment> on the pool
        sharding = None if dry_run else Sharding.of(env.shard_size, store, app, environment, vsn, store_block, strategy)
        with environment_lock(environment, env.lock_timeout_seconds,
                              kept_lease=resumed.lease_id if resumed else None) as waited:
            hosts = fleet.hosts(waited)
            if resumed:
                hosts = [hosts[i] for i in canary_first([h.name for h in hosts], resumed)]
            try:
                outcomes = run_on_fleet(env, hosts, plan_host if dry_run else upgrade_host,
                                        "plan" if dry_run else "hot-deploy", note=note, plan=plan,
                                        rollout=Rollout.of(env, canary, wave_size, max_failed_hosts),
                                        recording=None if dry_run else Recording(store, app, environment),
                                        guard=None if dry_run else Guard.of(env, app, vsn, manifest.get("down_to", []),
                                                                            environment, resumed),
                                        sharding=sharding)
            except FleetFailed as failure:
                why = quarantine_reason(failure)
                if why:
                    put_quarantine(store, app, vsn, quarantine.record(why, environment, current_run_id(), _now()))
                raise
    return [o.as_row() for o in outcomes]


def resumed_run(env, environment: str, dry_run: bool) -> Awaiting | None:
    """What this run kept when it suspended for an approval, if it did (only
    an environment that may ask for one is looked at: one call to Prefect)."""
    if dry_run or not (env.approval or env.canary_inconclusive == "ask"):
        return None
    awaiting = read_awaiting(environment)
    return awaiting if awaiting and awaiting.run_id == current_run_id() else None


def _now() -> str:
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
