"""status: which version each host of an environment runs (read-only on the
hosts), recorded in the store, beside what the store holds."""
from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from blocks import DEFAULT_STORE_BLOCK, load_environment, load_package_store
from hotdeploy.report import artifact_key, store_status_markdown
from tasks.hosts import inspect_host
from tasks.lock import environment_lock
from tasks.network import discover_hosts
from tasks.store import read_quarantine, BadPointer, list_store, read_environment_records, read_pointer

from .fleet import Recording, check_deploy, revoke_this_runs_rules, run_on_fleet
from .outcome import explained


@flow(name="status", on_cancellation=[revoke_this_runs_rules], on_crashed=[revoke_this_runs_rules])
@explained
def status(app: str, environment: str, store_block: str = DEFAULT_STORE_BLOCK) -> list[dict]:
    """Which version each host runs, asked of its node, recorded in the store.

    One row per host: the versions its node knows (current, permanent, old),
    its pid, and whether its endpoint answers the running version; beside
    it, the store's versions (incomplete publishes included) and every
    environment's record. Opens SSH ingress like hot_deploy and revokes it.

    Args:
        app: the release name, e.g. example_app
        environment: the hotdeploy-environment block, e.g. staging
        store_block: the S3Bucket block of the package store
    """
    check_deploy(app, environment, store_block, version=None)
    env = load_environment(environment)
    store = load_package_store(store_block)
    try:
        with environment_lock(environment, env.lock_timeout_seconds):
            outcomes = run_on_fleet(env, discover_hosts(env), inspect_host, "status", app=app,
                                    recording=Recording(store, app, environment))
    finally:
        show_store(store, app)
    return [o.as_row() for o in outcomes]


def show_store(store, app: str) -> None:
    """The store's side of the status, as an artifact; a store that cannot be
    read (or holds a garbage pointer) is logged, never hides the hosts."""
    log = get_run_logger()
    try:
        listing = list_store(store, app)
        try:
            pointer = read_pointer(store, app).version
        except BadPointer as e:
            log.error("%s", e)
            pointer = "(invalid)"
        text = store_status_markdown(app, pointer, listing.published, listing.incomplete,
                                     read_environment_records(store, app),
                                     quarantined={v: read_quarantine(store, app, v) or {} for v in listing.quarantined})
        create_markdown_artifact(text, key=artifact_key("store", app), description=f"{app} in the store")
    except Exception as e:
        log.error("could not read the store: %s", e)
        return
    if listing.incomplete:
        log.warning("incomplete publishes of %s (ignored by every flow): %s", app, ", ".join(
            f"{v} (missing {', '.join(m)})" for v, m in listing.incomplete.items()))
