"""rehearsal: upgrade the rehearsal environment to the newest version,
downgrade it to the previous, upgrade it again, all under a load probe, and
record the verdict in the store beside the version's manifest. The seed's
plan ("a rehearsal machine to test each upgrade first"), built."""
from __future__ import annotations

from datetime import datetime, timezone

from prefect import flow, get_run_logger

from blocks import DEFAULT_STORE_BLOCK, load_environment, load_package_store
from tasks.lock import environment_lock
from tasks.network import discover_hosts, revoke_rules_of_dead_runs
from tasks.probe import ProbeThroughSsh
from tasks.store import put_rehearsal, read_manifest, resolve_version

from .deploy import hot_deploy
from .fleet import check_deploy, current_run_id, revoke_this_runs_rules
from .rollback import rollback
from .outcome import explained

from hotdeploy.errors import KnownFailure


class RehearsalFailed(KnownFailure, RuntimeError):
    pass


@flow(name="rehearsal", on_cancellation=[revoke_this_runs_rules], on_crashed=[revoke_this_runs_rules])
@explained
def rehearsal(app: str, environment: str = "rehearsal", version: str = "latest",
              store_block: str = DEFAULT_STORE_BLOCK, probe_connections: int = 2) -> dict:
    """Up, down, up again on the rehearsal environment under load; the verdict is recorded.

    The load goes through SSH to each host's own app port, so it works where
    only SSH reaches the hosts. Fails if a step failed or a single probe
    request failed; either way the verdict is stored beside the manifest.

    Args:
        app: the release name, e.g. example_app
        environment: the hotdeploy-environment block to rehearse on
        version: a published version, or latest (the store's VERSION pointer)
        store_block: the S3Bucket block of the package store
        probe_connections: keep-alive connections of the load probe, per host
    """
    check_deploy(app, environment, store_block, version)
    log = get_run_logger()
    env = load_environment(environment)
    store = load_package_store(store_block)
    vsn = resolve_version(store, app, version)
    previous = read_manifest(store, app, vsn)["previous"]
    if previous is None:
        raise RehearsalFailed(f"{app} {vsn} is a first release: there is no downgrade to rehearse")
    with environment_lock(environment, env.lock_timeout_seconds):   # the deploys inside take it no more
        revoke_rules_of_dead_runs(env, current_run_id())
        hosts = discover_hosts(env)
        error = None
        step = "start"
        with ProbeThroughSsh(env, hosts, current_run_id(), connections=probe_connections) as probe:
            try:
                for step, run in ((f"upgrade to {vsn}", lambda: hot_deploy(app, environment, vsn, store_block)),
                                  (f"downgrade to {previous}",
                                   lambda: rollback(app, environment, previous, store_block)),
                                  (f"upgrade again to {vsn}", lambda: hot_deploy(app, environment, vsn, store_block))):
                    log.info("rehearsal step: %s", step)
                    run()
            except Exception as e:  # the verdict is recorded whatever failed
                error = f"{step}: {e}"
    stats = probe.stats.summary()
    ok = error is None and stats["failed"] == 0
    record = {"result": "ok" if ok else "failed", "version": vsn, "previous": previous,
              "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "flow_run": current_run_id(),
              "environment": environment, "hosts": len(hosts), "probe": stats,
              "reason": None if ok else (error or f"{stats['failed']} probe request(s) failed")}
    put_rehearsal(store, app, vsn, record)
    if not ok:
        raise RehearsalFailed(f"rehearsal of {app} {vsn} failed: {record['reason']}")
    return record
