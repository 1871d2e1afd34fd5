"""provision_host: first install of a release on bare hosts (the seed's
step 9: Ansible role + Upstart job, here a systemd unit)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import flow

from blocks import DEFAULT_STORE_BLOCK, load_environment, load_package_store
from tasks.hosts import Published, provision_one
from tasks.lock import environment_lock
from tasks.network import NoHosts, discover_hosts
from tasks.store import fetch_release, read_manifest, resolve_version
from tasks.workspace import refuse_unsafe_distribution

from .fleet import Recording, check_deploy, revoke_this_runs_rules, run_on_fleet
from .outcome import explained


@flow(name="provision-host", on_cancellation=[revoke_this_runs_rules], on_crashed=[revoke_this_runs_rules])
@explained
def provision_host(app: str, environment: str, version: str = "latest", address: str | None = None,
                   store_block: str = DEFAULT_STORE_BLOCK) -> list[dict]:
    """First install on bare hosts: release, runtime config, systemd unit, gate.

    Hosts that run the app already are left alone.

    Args:
        app: the release name, e.g. example_app
        environment: the hotdeploy-environment block, e.g. staging
        version: a published version, or latest (the store's VERSION pointer)
        address: only the host with this address; empty: every host of the environment
        store_block: the S3Bucket block of the package store
    """
    check_deploy(app, environment, store_block, version)
    env = load_environment(environment)
    store = load_package_store(store_block)
    vsn = resolve_version(store, app, version)
    manifest = read_manifest(store, app, vsn)
    with tempfile.TemporaryDirectory(prefix="hotdeploy-provision-") as tmp:
        tarball = fetch_release(store, app, vsn, manifest["sha256"], Path(tmp))
        refuse_unsafe_distribution(tarball, app, vsn, env.distribution == "cluster", environment)
        release = Published(app, vsn, manifest["sha256"], tarball, kind=manifest.get("kind", "rebar3"))
        with environment_lock(environment, env.lock_timeout_seconds):
            hosts = [h for h in discover_hosts(env) if address in (None, h.address)]
            if not hosts:
                raise NoHosts(f"no host of {environment} has address {address}")
            outcomes = run_on_fleet(env, hosts, provision_one, "provision", release=release,
                                    recording=Recording(store, app, environment, whole_fleet=address is None))
    return [o.as_row() for o in outcomes]
