"""The per-host procedure asks the running node: a gate that sees crashes and
children that did not start whatever the node's output goes to, what a
restart boots, and a full disk. Real namespace hosts, real releases."""
from __future__ import annotations

import time

import pytest

from tests.integration import fleet_checks as check
from tests.integration.conftest import checkout, copy_store

pytestmark = [pytest.mark.integration]
APP = "example_app"
ROOT = f"/srv/{APP}"


def provision(env, block: str, vsn: str) -> list[dict]:
    from flows.provision import provision_host
    return provision_host(app=APP, environment=env.name, version=vsn, store_block=block)


def run_in_foreground_without_logs(host) -> None:
    """Restart the node as `bin/<rel> foreground` with its output thrown away
    (as under systemd with journald off): no erlang.log.* exists to read."""
    host.run(f"{ROOT}/bin/{APP} stop >/dev/null 2>&1; rm -rf {ROOT}/log/erlang.log.*; "
             f"cd {ROOT} && setsid {ROOT}/bin/{APP} foreground </dev/null >/dev/null 2>&1 &")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            check.version(host)
            break
        except OSError:
            time.sleep(0.3)
    assert host.run(f"ls {ROOT}/log/erlang.log.* 2>/dev/null", check=False).stdout == ""


def test_gate_catches_a_crashing_code_change_on_a_foreground_node_without_logs(
        make_env, releases, moto_url, tmp_path_factory):
    from flows.deploy import hot_deploy
    from flows.fleet import FleetFailed
    from flows.release import release
    from flows.rollback import rollback
    from tasks.probe import LoadClient
    block, _, _ = copy_store(releases, moto_url, ["v1"])
    v1 = releases.versions["v1"]
    bad = release(app_dir=str(checkout(tmp_path_factory, "bad-downgrade")), store_block=block)["version"]
    env = make_env(2)
    provision(env, block, v1)
    quiet = env.fleet.hosts[0]
    run_in_foreground_without_logs(quiet)
    hot_deploy(app=APP, environment=env.name, version=bad, store_block=block)
    pids = [check.beam_pid(h) for h in env.fleet.hosts]

    # Down, v1's code meets v2's map: the counter crashes on the next hit.
    with LoadClient([h.address for h in env.fleet.hosts], connections=2, max_seconds=120):
        with pytest.raises(FleetFailed) as failure:
            rollback(app=APP, environment=env.name, to_version=v1, store_block=block)
    text = str(failure.value)
    assert quiet.name in text and "rolled back" in text and "error event" in text, text
    assert [check.version(h) for h in env.fleet.hosts] == [bad, bad], "each host went back to what ran"
    assert [check.beam_pid(h) for h in env.fleet.hosts] == pids
    assert env.ssh_rules() == []


def test_a_new_supervised_worker_runs_after_the_upgrade_and_one_that_cannot_start_sends_the_host_back(
        make_env, releases, moto_url, tmp_path_factory):
    from flows.deploy import hot_deploy
    from flows.fleet import FleetFailed
    from flows.release import release
    block, _, _ = copy_store(releases, moto_url, ["v1", "v2"])
    v2 = releases.versions["v2"]
    env = make_env(2, max_failed_hosts=1)
    provision(env, block, v2)
    ok_host = env.fleet.hosts[0]
    pids = [check.beam_pid(h) for h in env.fleet.hosts]

    def supervisor_and_children(host) -> tuple[str, str]:
        expr = ("Sup = whereis(example_app_sup), "
                "{Sup, [Id || {Id, P, _, _} <- supervisor:which_children(Sup), is_pid(P)]}.")
        out = host.run(f"cd {ROOT} && echo '{expr}' | erts-*/bin/erl_call -name {APP}@127.0.0.1 -e").stdout
        return out.split(",", 1)[0], out
    sup_before = supervisor_and_children(ok_host)[0]

    broken = release(app_dir=str(checkout(tmp_path_factory, "broken-worker")), store_block=block)["version"]
    with pytest.raises(FleetFailed) as failure:
        hot_deploy(app=APP, environment=env.name, version=broken, store_block=block)
    text = str(failure.value)
    assert "rolled back" in text and "example_app_ticker" in text and "did not start" in text, text
    assert [check.version(h) for h in env.fleet.hosts] == [v2, v2]
    assert "example_app_ticker" not in supervisor_and_children(ok_host)[1], "the spec the failed release added is gone"

    block, _, _ = copy_store(releases, moto_url, ["v1", "v2"])
    worker = release(app_dir=str(checkout(tmp_path_factory, "new-worker")), store_block=block)["version"]
    rows = hot_deploy(app=APP, environment=env.name, version=worker, store_block=block)
    assert [r["result"] for r in rows] == ["upgraded", "upgraded"]
    sup_after, children = supervisor_and_children(ok_host)
    assert "example_app_ticker" in children and sup_after == sup_before, children
    assert [check.beam_pid(h) for h in env.fleet.hosts] == pids


def test_a_restart_after_hot_upgrades_boots_what_runs_and_a_stale_start_script_is_repaired(make_env, releases):
    from flows.deploy import hot_deploy
    v1, v2, v3 = (releases.versions[v] for v in ("v1", "v2", "v3"))
    env = make_env(1)
    [host] = env.fleet.hosts
    provision(env, releases.block, v1)
    for vsn in (v2, v3):
        assert hot_deploy(app=APP, environment=env.name, version=vsn,
                          store_block=releases.block)[0]["result"] == "upgraded"

    def restart() -> None:  # the way the service does it: stop, start the script
        host.run(f"{ROOT}/bin/{APP} stop >/dev/null 2>&1; cd {ROOT} && "
                 f"timeout 60 {ROOT}/bin/{APP} daemon </dev/null >/dev/null 2>&1")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                return check.version(host)
            except OSError:
                time.sleep(0.3)

    assert restart() == v3, "a restart right after the deploys boots the version that ran"
    host.run(f"cp {ROOT}/bin/{APP}-{v1} {ROOT}/bin/{APP}")     # an operator's mistake
    [row] = hot_deploy(app=APP, environment=env.name, version=v3, store_block=releases.block)
    assert row["result"] == "upgraded" and f"restart would boot {v1}" in row["detail"], row
    assert restart() == v3


def test_too_little_disk_is_a_clear_error_leaves_nothing_and_a_rerun_completes(make_env, releases):
    from flows.deploy import hot_deploy
    from flows.fleet import FleetFailed
    v1, v2 = releases.versions["v1"], releases.versions["v2"]
    env = make_env(2)
    small = env.fleet.hosts[0]
    small.run(f"mkdir -p {ROOT} && mount -t tmpfs -o size=64m hotdeploy-small {ROOT}")
    provision(env, releases.block, v1)
    # leave 32 KB: less than even the upgrade package needs
    small.run(f"head -c $(( $(df -Pk {ROOT} | tail -1 | awk '{{print $4}}') * 1024 - 32*1024 )) /dev/zero "
              f"> {ROOT}/filler")
    with pytest.raises(FleetFailed) as failure:
        hot_deploy(app=APP, environment=env.name, version=v2, store_block=releases.block, max_failed_hosts=1)
    text = str(failure.value)
    # the host is as recorded: one exchange, so the node's own check speaks
    assert small.name in text and f"disk full in {ROOT}: unpacking {v2} needs" in text, text
    assert "in 4096-byte blocks" in text and "nothing installed" in text, text
    left = small.run(f"ls -a {ROOT}/releases; ls {ROOT}/lib", check=False).stdout
    assert v2 not in left and ".part" not in left, left
    assert check.version(env.fleet.hosts[1]) == v2, "the other host finished"

    small.run(f"rm -f {ROOT}/filler")
    rows = hot_deploy(app=APP, environment=env.name, version=v2, store_block=releases.block)
    assert [r["result"] for r in rows] == ["upgraded", "already running"]
    assert check.version(small) == v2


def test_an_install_that_hangs_ends_on_the_old_version_and_says_the_node_restarted(
        make_env, releases, moto_url, tmp_path_factory):
    """A code_change that outlasts release_handler's 5 s: the install fails
    mid-relup and release_handler restarts the node's applications in the
    old release (same OS process, state lost). Reported as that, not as a
    clean "rolled back"; nothing of the install is left running."""
    from flows.deploy import hot_deploy
    from flows.fleet import FleetFailed
    from flows.release import release
    from flows.status import status
    block, _, _ = copy_store(releases, moto_url, ["v1"])
    v1 = releases.versions["v1"]
    slow = release(app_dir=str(checkout(tmp_path_factory, "slow-code-change")), store_block=block)["version"]
    env = make_env(1)
    provision(env, block, v1)
    [host] = env.fleet.hosts
    pid = check.beam_pid(host)
    for _ in range(5):
        check.get(host.address, "/")
    with pytest.raises(FleetFailed) as failure:
        hot_deploy(app=APP, environment=env.name, version=slow, store_block=block)
    text = str(failure.value)
    assert "restarted" in text and "state lost" in text and v1 in text, text
    assert check.version(host) == v1 and check.beam_pid(host) == pid
    assert check.state(host) == (0, "tuple"), "the restart reset the state: said, not hidden"
    [row] = status(app=APP, environment=env.name, store_block=block)     # the node answers; nothing is stuck installing
    assert row["result"] == "answering" and row["from_version"] == v1 and f"{slow}:unpacked" in row["detail"]
