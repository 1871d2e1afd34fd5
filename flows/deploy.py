"""hot_deploy: upgrade every host of an environment in place to a release
(the seed's steps 7-8: temporary ingress, hosts by EC2 tags, upgrade.sh)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import flow

from blocks import DEFAULT_STORE_BLOCK, load_environment, load_package_store
from hotdeploy.rehearsal import rehearsal_gate
from tasks.hosts import ReleaseToShip, upgrade_host
from tasks.network import discover_hosts, sweep_expired_ingress
from tasks.store import (fetch_release, fetch_upgrade_package, read_manifest, read_rehearsal, resolve_version,
                         unpacked_size)

from .fleet import run_on_fleet


@flow(name="hot-deploy")
def hot_deploy(app: str, environment: str, version: str = "latest",
               store_block: str = DEFAULT_STORE_BLOCK, allow_unrehearsed: bool = False) -> list[dict]:
    """Hot-upgrade APP on ENVIRONMENT's hosts to VERSION (`latest` = the
    store's VERSION pointer). Fails if any host did not end on VERSION. An
    environment that requires rehearsal refuses a version that has not
    passed one, unless ALLOW_UNREHEARSED."""
    env = load_environment(environment)
    store = load_package_store(store_block)
    vsn = resolve_version(store, app, version)
    note = rehearsal_gate(app, vsn, env.requires_rehearsal,
                          read_rehearsal(store, app, vsn) if env.requires_rehearsal else None, allow_unrehearsed)
    manifest = read_manifest(store, app, vsn)
    with tempfile.TemporaryDirectory(prefix="hotdeploy-ship-") as tmp:
        tarball = fetch_release(store, app, vsn, manifest["sha256"], Path(tmp))
        sweep_expired_ingress(env)
        hosts = discover_hosts(env)
        release = ReleaseToShip(app, vsn, manifest["sha256"], manifest.get("up_from", []), tarball,
                                unpacked_bytes=unpacked_size(tarball))
        release.package = fetch_upgrade_package(store, app, vsn, manifest.get("upgrade_package"), Path(tmp))
        outcomes = run_on_fleet(env, hosts, upgrade_host, "hot-deploy", note=note, release=release)
    return [o.as_row() for o in outcomes]
