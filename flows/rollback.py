"""rollback: hot-downgrade every host to the previous release (or a named
one the installed relups go down to)."""
from __future__ import annotations

from prefect import flow

from blocks import DEFAULT_STORE_BLOCK, load_environment, load_package_store
from hotdeploy.versions import Version
from tasks.hosts import ReleaseToShip, upgrade_host
from tasks.lock import environment_lock
from tasks.network import discover_hosts
from tasks.store import list_versions, read_manifest, resolve_version

from .fleet import Recording, Rollout, check_deploy, revoke_this_runs_rules, run_on_fleet

MAX_VERSIONS_BACK = 20


@flow(name="rollback", on_cancellation=[revoke_this_runs_rules], on_crashed=[revoke_this_runs_rules])
def rollback(app: str, environment: str, to_version: str | None = None,
             store_block: str = DEFAULT_STORE_BLOCK, canary: int | None = None, wave_size: str | None = None,
             max_failed_hosts: int | None = None) -> list[dict]:
    """Downgrade APP on ENVIRONMENT to TO_VERSION (default: the release before
    the store's latest). Each host goes down through the relup of the version
    it runs, with the same gate and rollout as an upgrade."""
    check_deploy(app, environment, store_block, to_version, canary, wave_size, max_failed_hosts)
    env = load_environment(environment)
    store = load_package_store(store_block)
    if to_version is None:
        latest = resolve_version(store, app, "latest")
        to_version = read_manifest(store, app, latest)["previous"]
        if to_version is None:
            raise ValueError(f"{app} {latest} is a first release: there is nothing to roll back to")
    target = resolve_version(store, app, to_version)
    newer = [v for v in list_versions(store, app) if Version.parse(v) > Version.parse(target)]
    down_paths = {v: read_manifest(store, app, v).get("down_to", []) for v in newer[-MAX_VERSIONS_BACK:]}
    target_manifest = read_manifest(store, app, target)
    release = ReleaseToShip(app, target, target_manifest["sha256"], [], None, down_paths)
    with environment_lock(environment, env.lock_timeout_seconds):
        outcomes = run_on_fleet(env, discover_hosts(env), upgrade_host, "rollback", release=release,
                                rollout=Rollout.of(env, canary, wave_size, max_failed_hosts),
                                recording=Recording(store, app, environment))
    return [o.as_row() for o in outcomes]
