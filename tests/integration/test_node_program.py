"""The node program on the namespace fleet, through the whole pipeline: every
failure after the node changed takes the host back (an endpoint that resets,
an install that overruns, a disk that fills before permanence), space is
counted in blocks, supervisor changes go both ways, and distribution stays
on loopback. Real releases, real hosts, real S3/EC2 wire protocol."""
from __future__ import annotations

import subprocess
import threading
import time

import pytest

from tests.integration import fleet_checks as check
from tests.integration.conftest import checkout, copy_store

pytestmark = [pytest.mark.integration]
APP = "example_app"
ROOT = f"/srv/{APP}"


def provision(env, block: str, vsn: str) -> None:
    from flows.provision import provision_host
    provision_host(app=APP, environment=env.name, version=vsn, store_block=block)


def node_facts(host) -> tuple[str, str, str]:
    """(running, permanent, what a restart boots), read on the host."""
    def erl(expr: str) -> str:
        return host.run(f"cd {ROOT} && echo '{expr}' | erts-*/bin/erl_call -name {APP}@127.0.0.1 -e").stdout
    running = check.version(host)
    permanent = erl('[V || {_, V, _, permanent} <- release_handler:which_releases()].').split('"')[1]
    boots = host.run(f"sed -n 's/^REL_VSN=\"\\(.*\\)\"/\\1/p' {ROOT}/bin/{APP}").stdout.strip()
    return running, permanent, boots


def last_record(host) -> str:
    return host.run(f"tail -n 1 {ROOT}/hotdeploy.log").stdout.strip()


def free_exactly(host, free: int) -> None:
    """Resize the host's release root (a tmpfs) to leave FREE bytes."""
    used = int(host.run(f"stat -f -c '%S %b %f' {ROOT} | awk '{{print $1 * ($2 - $3)}}'").stdout)
    host.run(f"mount -o remount,size={used + free} {ROOT}")


def test_every_failure_after_the_node_changed_takes_the_host_back_and_space_is_counted_in_blocks(
        make_env, releases, moto_url, tmp_path_factory):
    from flows.deploy import hot_deploy
    from flows.fleet import FleetFailed
    from flows.release import release
    block, _, _ = copy_store(releases, moto_url, ["v1", "v2", "v3"])
    v2, v3 = releases.versions["v2"], releases.versions["v3"]
    env = make_env(1, health_soak_seconds=3.0, install_timeout_seconds=0.5, health_timeout_seconds=5)
    [host] = env.fleet.hosts
    host.run(f"mkdir -p {ROOT} && mount -t tmpfs -o size=64m hotdeploy-root {ROOT}")
    provision(env, block, v2)
    pid = check.beam_pid(host)

    def deploy_fails(vsn: str) -> str:
        with pytest.raises(FleetFailed) as failure:
            hot_deploy(app=APP, environment=env.name, version=vsn, store_block=block)
        assert node_facts(host) == (v2, v2, v2), "back on the previous version, permanent, and what boots"
        assert check.beam_pid(host) == pid
        assert " result=rolled_back running=" + v2 in last_record(host), last_record(host)
        return str(failure.value)

    # An endpoint that resets every connection to it (an RST, no answer).
    resets = release(app_dir=str(checkout(tmp_path_factory, "reset-health")), store_block=block)["version"]
    text = deploy_fails(resets)
    assert "rolled back" in text and "health gate" in text, text

    # An install slower than the environment allows: waited for, then taken back.
    slow = release(app_dir=str(checkout(tmp_path_factory, "slow-install")), store_block=block)["version"]
    text = deploy_fails(slow)
    assert "did not finish within 500 ms" in text, text

    # 98,304 bytes free passed a check that counted 96,871 bytes of file
    # contents; in blocks, with the package and a margin, it is far short.
    free_exactly(host, 98_304)
    with pytest.raises(FleetFailed) as failure:
        hot_deploy(app=APP, environment=env.name, version=v3, store_block=block)
    # The record shows the host on v2: one exchange, so the node counts (the
    # package is sent with the call and removed with anything it unpacked).
    assert f"disk full in {ROOT}: unpacking {v3} needs" in str(failure.value), str(failure.value)
    assert "in 4096-byte blocks" in str(failure.value) and "nothing installed" in str(failure.value)
    assert v3 not in host.run(f"ls -a {ROOT}/releases").stdout, "nothing of v3 was unpacked or left staged"
    assert "runtime.config.new" not in host.run(f"ls -a {ROOT}").stdout
    assert node_facts(host) == (v2, v2, v2)

    # With room again, the disk fills while the new release soaks, before it
    # is made permanent.
    free_exactly(host, 32 << 20)

    def fill_once_v3_answers():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if check.version(host) == v3:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        host.run(f"dd if=/dev/zero of={ROOT}/filler bs=1M 2>/dev/null || true", check=False)
    filler = threading.Thread(target=fill_once_v3_answers)
    filler.start()
    text = deploy_fails(v3)
    filler.join()
    assert f"disk full in {ROOT}: making {v3} permanent needs" in text, text

    # The disk has room again: the rerun ends on v3, and so does a restart.
    host.run(f"rm -f {ROOT}/filler")
    [row] = hot_deploy(app=APP, environment=env.name, version=v3, store_block=block)
    assert row["result"] == "upgraded" and node_facts(host) == (v3, v3, v3)
    assert check.restart(host, ROOT, APP) == v3, "a restart boots what the run reported"


def test_a_child_a_release_adds_goes_with_a_rollback_and_one_it_removes_stops_at_the_upgrade(
        make_env, releases, moto_url, tmp_path_factory):
    from flows.deploy import hot_deploy
    from flows.release import release
    from flows.rollback import rollback
    block, _, _ = copy_store(releases, moto_url, ["v1", "v2"])
    v2 = releases.versions["v2"]
    env = make_env(2)
    provision(env, block, v2)
    pids = [check.beam_pid(h) for h in env.fleet.hosts]

    def tree(host) -> str:
        expr = ("{[Id || {Id, _, _, _} <- supervisor:which_children(example_app_sup)], "
                "whereis(example_app_ticker), code:is_loaded(example_app_ticker)}.")
        return host.run(f"cd {ROOT} && echo '{expr}' | erts-*/bin/erl_call -name {APP}@127.0.0.1 -e").stdout.strip()

    worker = release(app_dir=str(checkout(tmp_path_factory, "new-worker")), store_block=block)
    assert "{apply, {supervisor, restart_child, [example_app_sup, example_app_ticker]}}" in worker["appup"]
    hot_deploy(app=APP, environment=env.name, version=worker["version"], store_block=block)
    assert all("example_app_ticker, example_app_counter" in tree(h) for h in env.fleet.hosts)
    rollback(app=APP, environment=env.name, store_block=block)
    assert [tree(h) for h in env.fleet.hosts] == ["{ok, {[example_app_counter], undefined, false}}"] * 2, \
        "no process, no spec, no module of the child the rolled-back release added"

    hot_deploy(app=APP, environment=env.name, version=worker["version"], store_block=block)
    without = release(app_dir=str(checkout(tmp_path_factory, "v2")), store_block=block)    # the worker removed
    rows = hot_deploy(app=APP, environment=env.name, version=without["version"], store_block=block)
    assert [r["result"] for r in rows] == ["upgraded", "upgraded"]
    assert [tree(h) for h in env.fleet.hosts] == ["{ok, {[example_app_counter], undefined, false}}"] * 2
    assert [check.beam_pid(h) for h in env.fleet.hosts] == pids

    # Distribution stays on loopback: from the other host, neither epmd nor
    # the node's distribution port answers.
    first, other = env.fleet.hosts
    ports = first.run("ss -Htln | awk '{print $4}'").stdout.split()
    erlang = [p for p in ports if not p.endswith((":22", ":8080"))]     # epmd and the distribution
    assert erlang and all(p.startswith(("127.0.0.1:", "[::1]:")) for p in erlang), ports
    dist = sorted({p.rsplit(":", 1)[1] for p in erlang})
    for port in dist:
        probe = other.run(f"python3 -c \"import socket; socket.create_connection(('{first.address}', {port}), 2)\"",
                          check=False)
        assert probe.returncode != 0, f"port {port} of {first.name} answers from {other.name}"


def test_a_release_with_relx_default_vm_args_is_refused_before_anything_is_built(
        make_store, tmp_path_factory):
    from flows.release import release
    from tests.integration.conftest import snapshot
    block, client, bucket = make_store()
    app = checkout(tmp_path_factory, "v1")
    (app / "config" / "vm.args").unlink()
    (app / "rebar.config").write_text("\n".join(line for line in (app / "rebar.config").read_text().splitlines()
                                                if "vm_args" not in line) + "\n")
    before = snapshot(client, bucket)
    state = release(app_dir=str(app), store_block=block, return_state=True)
    assert state.is_failed()
    assert state.message.startswith("refused: ") and "relx's default vm.args" in state.message
    assert "it sets a cookie (-setcookie)" in state.message and "not bound to loopback" in state.message
    assert "-name example_app@127.0.0.1 / -kernel inet_dist_use_interface {127,0,0,1}" in state.message
    assert snapshot(client, bucket) == before
    images = subprocess.run(["docker", "ps", "-a", "-q", "--filter", "ancestor=hotdeploy-builder"],
                            capture_output=True, text=True).stdout
    assert images == "", "no container ran"
