"""rollback: hot-downgrade every host to the previous release (or a named
one the installed relups go down to)."""
from __future__ import annotations

from prefect import flow

from blocks import DEFAULT_STORE_BLOCK, load_environment, load_package_store
from hotdeploy.versions import Version
from tasks.hosts import ReleaseToShip, upgrade_host
from tasks.network import discover_hosts, sweep_expired_ingress
from tasks.store import list_versions, read_manifest, resolve_version

from .fleet import run_on_fleet

MAX_VERSIONS_BACK = 20


@flow(name="rollback")
def rollback(app: str, environment: str, to_version: str | None = None,
             store_block: str = DEFAULT_STORE_BLOCK) -> list[dict]:
    """Downgrade APP on ENVIRONMENT to TO_VERSION (default: the release before
    the store's latest). Each host goes down through the relup of the version
    it runs, with the same gate as an upgrade."""
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
    sweep_expired_ingress(env)
    hosts = discover_hosts(env)
    release = ReleaseToShip(app, target, target_manifest["sha256"], [], None, down_paths)
    outcomes = run_on_fleet(env, hosts, upgrade_host, "rollback", release=release)
    return [o.as_row() for o in outcomes]
