"""Releases that cannot be hot-loaded ship by a rolling restart, under the same
lock, waves, gates and record: a changed NIF library restarts the hosts that
had it, a host on a version with a hot edge goes hot in the same run,
strategy=hot refuses in under a second, a dry run says it all first, a
rollback restarts back, and a new node that fails its gate is restarted into
the previous release. After each, a restart of the node boots what the run
reported. Real releases (a real NIF), hosts, load."""
from __future__ import annotations

import time

import pytest

from tests.integration import fleet_checks as check
from tests.integration.conftest import checkout, copy_store

pytestmark = [pytest.mark.integration]
APP = "example_app"
ROOT = f"/srv/{APP}"


def restart_node(host) -> str:
    return check.restart(host, ROOT, APP, crash=True)


def failed_on(load, host) -> int:
    return sum(1 for e in load.stats.errors if e.startswith(f"{host.address}:"))


def test_a_nif_change_restarts_the_hosts_that_need_it_and_the_others_go_hot_in_the_same_run(
        make_env, releases, moto_url, tmp_path_factory):
    from flows.deploy import hot_deploy
    from flows.provision import provision_host
    from flows.release import release
    from flows.rollback import rollback
    from tasks.probe import LoadClient
    block, client, bucket = copy_store(releases, moto_url, ["v1", "v2"])
    v2 = releases.versions["v2"]
    nif = release(app_dir=str(checkout(tmp_path_factory, "nif")), store_block=block)
    assert nif["edges"] == {v2: {"strategy": "hot", "reasons": []}}, "a new NIF loads with its new module: hot"
    env = make_env(2)
    on_nif, on_v2 = env.fleet.hosts
    provision_host(app=APP, environment=env.name, version=nif["version"], address=on_nif.address, store_block=block)
    provision_host(app=APP, environment=env.name, version=v2, address=on_v2.address, store_block=block)
    assert check.get(on_nif.address, "/api/public/native") == "1"

    nif2 = release(app_dir=str(checkout(tmp_path_factory, "nif-2")), store_block=block)
    target = nif2["version"]
    edge = nif2["edges"][nif["version"]]
    assert edge == {"strategy": "restart", "reasons": ["NIF library example_app/priv/example_app_nif.so changed"]}
    assert nif2["edges"][v2]["strategy"] == "hot"
    pids = [check.beam_pid(h) for h in env.fleet.hosts]

    # strategy=hot: refused from the environment record, before anything.
    state = hot_deploy(app=APP, environment=env.name, version=target, store_block=block, strategy="hot",
                       return_state=True)
    assert state.is_failed()
    ran = check.task_runs(state.state_details.flow_run_id, until=lambda names: len(names) >= 2)
    assert sorted(n.rsplit("-", 1)[0] for n in ran) == ["discover_hosts", "read_deploy_inputs"], \
        f"the store and EC2 were read once each, and nothing else was done (no lock, no ingress, no host): {ran}"
    assert f"{on_nif.name} runs {nif['version']}: NIF library example_app/priv/example_app_nif.so changed" in \
        state.message, state.message
    # A dry run says what each host would do, and changes nothing.
    plan = {r["host"]: r for r in hot_deploy(app=APP, environment=env.name, version=target, store_block=block,
                                             dry_run=True)}
    assert plan[on_nif.name]["result"] == "would restart" and "NIF library" in plan[on_nif.name]["detail"]
    assert plan[on_v2.name]["result"] == "would upgrade" and "upgrade package" in plan[on_v2.name]["detail"]
    assert "full tarball" in plan[on_nif.name]["detail"]
    assert [check.beam_pid(h) for h in env.fleet.hosts] == pids and env.ssh_rules() == []

    with LoadClient([h.address for h in env.fleet.hosts], connections=2, max_seconds=240) as load:
        time.sleep(0.5)
        rows = {r["host"]: r for r in hot_deploy(app=APP, environment=env.name, version=target,
                                                 store_block=block)}
        time.sleep(0.5)
    assert rows[on_nif.name]["result"] == "restarted" and rows[on_nif.name]["down_seconds"] > 0
    assert rows[on_v2.name]["result"] == "upgraded"
    assert check.beam_pid(on_nif) != pids[0] and check.beam_pid(on_v2) == pids[1]
    assert [check.get(h.address, "/api/public/native") for h in env.fleet.hosts] == ["2", "2"]
    assert failed_on(load, on_v2) == 0, "the host upgraded hot lost nothing"
    assert load.stats.sent > 100
    assert [restart_node(h) for h in env.fleet.hosts] == [target, target], "a restart boots what was reported"

    rows = {r["host"]: r for r in rollback(app=APP, environment=env.name, store_block=block)}
    assert rows[on_nif.name]["result"] == "restarted" and rows[on_nif.name]["to_version"] == nif["version"]
    assert rows[on_v2.name]["result"] == "downgraded" and rows[on_v2.name]["to_version"] == v2
    assert check.get(on_nif.address, "/api/public/native") == "1"
    assert [restart_node(h) for h in env.fleet.hosts] == [nif["version"], v2]


def test_a_new_node_that_fails_its_gate_is_restarted_into_the_previous_release(
        make_env, releases, moto_url, tmp_path_factory):
    from flows.deploy import hot_deploy
    from flows.fleet import FleetFailed
    from flows.provision import provision_host
    from flows.release import release
    block, _, _ = copy_store(releases, moto_url, ["v1", "v2"])
    v2 = releases.versions["v2"]
    env = make_env(1, health_timeout_seconds=5)
    [host] = env.fleet.hosts
    provision_host(app=APP, environment=env.name, version=v2, store_block=block)
    pid = check.beam_pid(host)
    resets = release(app_dir=str(checkout(tmp_path_factory, "reset-health")), store_block=block)["version"]
    with pytest.raises(FleetFailed) as failure:
        hot_deploy(app=APP, environment=env.name, version=resets, store_block=block, strategy="restart")
    text = str(failure.value)
    assert "rolled back" in text and f"restarted back into {v2}" in text, text
    assert check.version(host) == v2 and check.beam_pid(host) != pid
    last = host.run(f"tail -n 1 {ROOT}/hotdeploy.log").stdout
    assert f"to={resets} result=rolled_back running={v2} boots={v2}" in last, last
    assert restart_node(host) == v2
