"""deploy_shard: one shard of a big wave of hot_deploy, run by whichever
worker of the environment's pool takes it (the deploy-shard/<environment>
deployment), so several workers share a big fleet. The deploy's own run
keeps the lock, the waves, the SSH rule, the guard and the record; this run
upgrades its hosts and leaves their outcomes in the store for it."""
from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import flow

from blocks import load_environment, load_package_store
from hotdeploy import params
from tasks.hosts import upgrade_host, upgrade_plan
from tasks.remote import Host
from tasks.store import put_shard_outcomes, read_deploy_inputs

from .fleet import FleetFailed, run_on_shard
from .outcome import explained


@flow(name="deploy-shard")
@explained
def deploy_shard(app: str, environment: str, version: str, store_block: str, hosts: list[dict], run_id: str,
                 shard: str, strategy: str = "auto", commit: bool = True) -> list[dict]:
    """Upgrade one shard of a hot_deploy run's wave (started by that run, not by a person).

    Args:
        app: the release name
        environment: the hotdeploy-environment block
        version: the published version the deploy run resolved
        store_block: the S3Bucket block of the package store
        hosts: the shard's hosts ({instance_id, name, address}), as the deploy run discovered them
        run_id: the deploy run, whose SSH rule is open and whose lock is held
        shard: w<wave>-s<n>
        strategy: auto, hot or restart, as the deploy run was given
        commit: false while the deploy's guard decides (a stability window)
    """
    params.app_name(app)
    params.block_name("environment", environment)
    params.version(version)
    params.strategy(strategy)
    env = load_environment(environment)
    store = load_package_store(store_block)
    inputs = read_deploy_inputs(store, app, version, environment, False)
    with tempfile.TemporaryDirectory(prefix="hotdeploy-shard-") as tmp:
        plan = upgrade_plan(store, app, inputs, strategy, Path(tmp))
        outcomes = run_on_shard(env, [Host(**h) for h in hosts], upgrade_host, f"hot-deploy shard {shard}", run_id,
                                plan=plan, commit=commit)
    put_shard_outcomes(store, app, run_id, shard, [o.as_row() for o in outcomes])
    if any(not o.ok for o in outcomes):
        raise FleetFailed(outcomes)
    return [o.as_row() for o in outcomes]
