"""rollback: hot-downgrade every host to the release it ran before (or to a
named one the installed relups go down to)."""
from __future__ import annotations

import json

from prefect import flow, get_run_logger
from prefect.states import Completed

from blocks import DEFAULT_STORE_BLOCK, load_environment, load_package_store
from hotdeploy import layout, params
from hotdeploy.hostplan import PER_HOST
from hotdeploy.quarantine import Quarantined
from hotdeploy.versions import Version
from tasks.hosts import DowngradePlan, plan_host, upgrade_host
from tasks.lock import environment_lock
from tasks.network import FleetReadAhead
from tasks.store import list_store, read_manifest, read_text, resolve_version

from .fleet import Recording, Rollout, check_deploy, revoke_this_runs_rules, run_on_fleet
from .outcome import explained

MAX_VERSIONS_BACK = 20


@flow(name="rollback", on_cancellation=[revoke_this_runs_rules], on_crashed=[revoke_this_runs_rules])
@explained
def rollback(app: str, environment: str, to_version: str | None = None,
             store_block: str = DEFAULT_STORE_BLOCK, canary: int | None = None, wave_size: str | None = None,
             max_failed_hosts: int | None = None, strategy: str = "auto", dry_run: bool = False):
    """Hot-downgrade an app on an environment: each host back to what it ran before.

    With no to_version, each host goes back to the version it ran before its
    current one (the environment record, else the newest older release
    installed on it that its relup goes down to); with to_version, every
    host goes there, and a host whose relup cannot reach it is refused. Each
    host gets back the runtime config that was in force with its target,
    with the same gate and rollout as an upgrade. A rollback that changed no
    host says so in its final state.

    Args:
        app: the release name, e.g. example_app
        environment: the hotdeploy-environment block, e.g. production
        to_version: where every host goes; empty: each host to its own previous version
        store_block: the S3Bucket block of the package store
        canary: hosts downgraded first, alone (empty: the environment's setting)
        wave_size: hosts per wave after the canary, a number or a percentage (empty: the environment's)
        max_failed_hosts: once more hosts failed, no new host starts (empty: the environment's)
        strategy: auto (hot where the running relup goes down, else a restart back), hot, restart
        dry_run: only say, per host, where it would go, hot or restart and why, and the wave; change nothing
    """
    check_deploy(app, environment, store_block, to_version, canary, wave_size, max_failed_hosts)
    params.strategy(strategy)
    env = load_environment(environment)
    store = load_package_store(store_block)
    fleet = FleetReadAhead(env)        # EC2 is read beside the store
    listing = list_store(store, app)
    published = listing.published
    if to_version is None:
        target, ran_before = PER_HOST, _ran_before(store, app, environment)
        reachable = published[-MAX_VERSIONS_BACK:]
    else:
        target, ran_before = resolve_version(store, app, to_version), None
        if target in listing.quarantined:
            raise Quarantined(f"{app} {target} is quarantined: a rollback never goes to it. Roll back to another "
                              "version (status lists them)")
        reachable = [v for v in published if Version.parse(v) > Version.parse(target)][-MAX_VERSIONS_BACK:]
    manifests = {v: read_manifest(store, app, v) for v in reachable}
    down_paths = {v: m.get("down_to", []) for v, m in manifests.items()}
    # what each version a host may go back to declares (a rollback to a version
    # older than every one reachable has its own manifest read too)
    declared = {v: m.get("supervisors", []) for v, m in manifests.items()}
    if target != PER_HOST and target not in declared:
        declared[target] = read_manifest(store, app, target).get("supervisors", [])
    plan = DowngradePlan(app, target, down_paths, ran_before or {}, declared, strategy,
                         avoid=tuple(listing.quarantined))
    with environment_lock(environment, env.lock_timeout_seconds) as waited:
        outcomes = run_on_fleet(env, fleet.hosts(waited), plan_host if dry_run else upgrade_host,
                                "rollback-plan" if dry_run else "rollback", plan=plan,
                                rollout=Rollout.of(env, canary, wave_size, max_failed_hosts),
                                recording=None if dry_run else Recording(store, app, environment))
    rows = [o.as_row() for o in outcomes]
    if not dry_run and not any(o.result in ("downgraded", "restarted") for o in outcomes):
        message = (f"rollback changed no host: all {len(outcomes)} already run(s) "
                   f"{', '.join(sorted({o.running or '?' for o in outcomes}))}")
        get_run_logger().warning("%s", message)
        return Completed(message=message, data=rows)
    return rows


def _ran_before(store, app: str, environment: str) -> dict[str, str]:
    """Host -> the version it ran before its current one, from the
    environment record (empty when there is none: each host's own installed
    releases decide)."""
    text = read_text(store, layout.environment_key(app, environment))
    try:
        record = json.loads(text) if text else {}
        return {h["host"]: h["previous"] for h in record.get("hosts", [])
                if isinstance(h, dict) and isinstance(h.get("previous"), str) and isinstance(h.get("host"), str)}
    except (ValueError, AttributeError):
        get_run_logger().warning("the environment record of %s is not readable: each host's installed releases "
                                 "decide", environment)
        return {}
