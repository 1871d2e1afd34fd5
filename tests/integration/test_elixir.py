"""An Elixir app (examples/elixir_app, `mix release`) through the same flows
as the Erlang one: released with a relup by the release flow, provisioned,
hot-upgraded v1 -> v2 -> v3 and rolled back on a namespace fleet under load.
Real Docker (Debian's elixir in the builder), moto, Prefect, sshd hosts."""
from __future__ import annotations

import subprocess
import time

import pytest

from tests.conftest import ROOT
from tests.integration import fleet_checks as check
from tests.integration.conftest import RUNTIME_SECRET, Released, new_store

pytestmark = [pytest.mark.integration]
APP = "example_ex"
RUNTIME_CONFIG = f'[{{example_ex, [{{greeting, "Howdy"}}, {{api_token, "{RUNTIME_SECRET}"}}]}}].\n'


def checkout(tmp_path_factory, version: str):
    dest = tmp_path_factory.mktemp(f"elixir-{version}")
    subprocess.run([str(ROOT / "examples" / "checkout-version"), version, str(dest), "elixir_app"], check=True)
    return dest


@pytest.fixture(scope="module")
def elixir_releases(docker_engine, prefect_server, moto_url, tmp_path_factory) -> Released:
    from flows.release import release
    block, client, bucket = new_store(moto_url)
    summaries = [release(app_dir=str(checkout(tmp_path_factory, v)), store_block=block,
                         git_commit=f"commit-ex-{v}") for v in ("v1", "v2", "v3")]
    return Released(block, client, bucket, {v: s["version"] for v, s in zip(("v1", "v2", "v3"), summaries)},
                    summaries)


def manifest(released: Released, vsn: str) -> dict:
    import json
    return json.loads(released.client.get_object(Bucket=released.bucket,
                                                 Key=f"{APP}/{vsn}.manifest.json")["Body"].read())


def test_an_elixir_release_is_built_with_a_relup_from_the_one_before(elixir_releases):
    v1, v2, v3 = (elixir_releases.versions[v] for v in ("v1", "v2", "v3"))
    assert manifest(elixir_releases, v1)["kind"] == "mix"
    assert manifest(elixir_releases, v1)["elixir"].startswith("1.")
    assert manifest(elixir_releases, v2)["up_from"] == [v1]
    assert manifest(elixir_releases, v3)["up_from"] == [v2]
    assert any("Elixir.ExampleEx.Counter" in i for i in manifest(elixir_releases, v3)["appup"])


def test_elixir_hot_upgrades_and_rollback_under_load_keep_pids_state_config_and_every_request(
        make_env, elixir_releases):
    from flows.deploy import hot_deploy
    from flows.provision import provision_host
    from flows.rollback import rollback
    from tasks.probe import LoadClient
    v1, v2, v3 = (elixir_releases.versions[v] for v in ("v1", "v2", "v3"))
    # The service's OS environment reaches runtime.exs at boot and at every
    # upgrade; the block's runtime_config also sets region: runtime.exs wins, said.
    overridden = RUNTIME_CONFIG.replace("{greeting,", '{region, "from-the-block"}, {greeting,')
    env = make_env(2, release_root="/srv/example_ex", runtime_config=overridden,
                   service_environment="# where this fleet runs\nEXAMPLE_REGION=eu-west-1\n")
    hosts = env.fleet.hosts
    block = elixir_releases.block

    rows = provision_host(app=APP, environment=env.name, version=v1, store_block=block)
    assert [r["result"] for r in rows] == ["provisioned"] * 2
    assert [check.version(h) for h in hosts] == [v1] * 2
    pids = [check.beam_pid(h) for h in hosts]
    for h in hosts:
        for _ in range(3):
            assert check.get(h.address, "/").startswith("Howdy from example_ex"), "runtime.config at first boot"
    assert [check.get(h.address, "/api/public/region") for h in hosts] == ["eu-west-1"] * 2, \
        "runtime.exs at boot, with the service's environment"

    def v2_said_override():
        state = hot_deploy(app=APP, environment=env.name, version=v2, store_block=block, return_state=True)
        said = "config/runtime.exs sets example_ex.region, which the environment's runtime_config sets too"
        logs = check.run_logs(state.state_details.flow_run_id, until=lambda line: said in line)
        assert any(said in line for line in logs), logs
        return state.result()

    steps = [("v2", v2_said_override, "map"),
             ("v3", lambda: hot_deploy(app=APP, environment=env.name, version=v3, store_block=block),
              "map+last_hit"),
             ("back to v2", lambda: rollback(app=APP, environment=env.name, to_version=v2, store_block=block),
              "map")]
    for name, step, shape in steps:
        hits_before = [check.state(h)[0] for h in hosts]
        with LoadClient([h.address for h in hosts], connections=2, max_seconds=240) as load:
            time.sleep(0.5)
            rows = step()
            time.sleep(0.5)
        assert {r["result"] for r in rows} <= {"upgraded", "downgraded"}, (name, rows)
        assert load.stats.failed == 0 and load.stats.sent > 20, (name, load.stats.summary())
        assert [check.beam_pid(h) for h in hosts] == pids, f"{name}: the nodes were not restarted"
        states = [check.state(h) for h in hosts]
        assert all(s == shape for _, s in states), (name, states)
        assert all(after >= before for (after, _), before in zip(states, hits_before)), "state carried"
        assert [check.get(h.address, "/api/public/region") for h in hosts] == ["eu-west-1"] * 2, \
            f"{name}: the runtime.exs value survived the install"
        assert all("Howdy" in check.get(h.address, "/") for h in hosts), f"{name}: runtime.config survived"
    assert [check.version(h) for h in hosts] == [v2] * 2


def test_a_crashing_code_change_leaves_the_canary_on_the_old_version_and_the_rest_untouched(
        make_env, elixir_releases, tmp_path_factory):
    from flows.deploy import hot_deploy
    from flows.fleet import FleetFailed
    from flows.provision import provision_host
    from flows.release import release
    v1 = elixir_releases.versions["v1"]
    bad = release(app_dir=str(checkout(tmp_path_factory, "crashing-code-change")), store_block=elixir_releases.block,
                  upgrade_from=[v1])["version"]
    env = make_env(2, release_root="/srv/example_ex", runtime_config=RUNTIME_CONFIG, canary=1, max_failed_hosts=0)
    provision_host(app=APP, environment=env.name, version=v1, store_block=elixir_releases.block)
    canary, other = env.fleet.hosts
    pids = [check.beam_pid(h) for h in env.fleet.hosts]
    with pytest.raises(FleetFailed) as failure:
        hot_deploy(app=APP, environment=env.name, version=bad, store_block=elixir_releases.block)
    rows = {o.host: o for o in failure.value.outcomes}
    assert rows[other.name].result == "not started", "no other host starts once the canary failed"
    assert rows[canary.name].result != "upgraded" and v1 in rows[canary.name].detail, rows[canary.name]
    assert [check.version(h) for h in env.fleet.hosts] == [v1, v1], "nothing left between versions"
    assert [check.beam_pid(h) for h in env.fleet.hosts] == pids


def test_a_failing_exunit_test_publishes_nothing_and_names_the_test(make_store, tmp_path_factory):
    from flows.release import release
    from tasks.container import ContainerFailed
    from tests.integration.conftest import snapshot
    block, client, bucket = make_store()
    before = snapshot(client, bucket)
    with pytest.raises(ContainerFailed) as failed:
        release(app_dir=str(checkout(tmp_path_factory, "broken-tests")), store_block=block)
    assert "ExampleExBrokenTest" in failed.value.cause and "greeting is rude" in failed.value.cause
    assert snapshot(client, bucket) == before


def test_an_elixir_project_with_hex_dependencies_is_refused_before_anything_runs(make_store, tmp_path_factory):
    from flows.release import release
    src = checkout(tmp_path_factory, "v1")
    mix = src / "mix.exs"
    mix.write_text(mix.read_text().replace("deps: []", 'deps: [{:jason, "~> 1.4"}]'))
    block, client, bucket = make_store()
    with pytest.raises(ValueError, match="depends on jason: dependencies cannot be fetched"):
        release(app_dir=str(src), store_block=block)
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_an_elixir_release_whose_node_has_no_name_in_vm_args_is_refused(make_store, tmp_path_factory):
    """mix's default: the start script passes its own --sname, which hotdeploy
    cannot reach the node by; refused before anything is built, with what to add."""
    from flows.release import release
    from tasks.workspace import AppConfigError
    src = checkout(tmp_path_factory, "v1")
    (src / "rel" / "vm.args.eex").unlink()
    (src / "rel" / "env.sh.eex").unlink()
    block, client, bucket = make_store()
    with pytest.raises(AppConfigError, match=r"no rel/vm.args.eex.*names no node.*-name example_ex@127.0.0.1.*"
                                                  r"RELEASE_DISTRIBUTION=none"):
        release(app_dir=str(src), store_block=block)
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_a_changed_protocol_implementation_ships_by_a_restart(elixir_releases, make_env, tmp_path_factory):
    """Last in this module: it releases into the shared store. Consolidated
    protocols are not hot-loaded (the node keeps the old ones): the build
    says so, and the host is restarted into the release, its new node gated."""
    from flows.deploy import hot_deploy
    from flows.provision import provision_host
    from flows.release import release
    block, v3 = elixir_releases.block, elixir_releases.versions["v3"]
    env = make_env(1, release_root="/srv/example_ex", runtime_config=RUNTIME_CONFIG)
    [host] = env.fleet.hosts
    provision_host(app=APP, environment=env.name, version=v3, store_block=block)
    pid = check.beam_pid(host)
    built = release(app_dir=str(checkout(tmp_path_factory, "protocol-change")), store_block=block,
                    upgrade_from=[v3])
    edge = manifest(elixir_releases, built["version"])["edges"][v3]
    assert edge["strategy"] == "restart" and "consolidated protocols changed" in edge["reasons"][0], edge
    [row] = hot_deploy(app=APP, environment=env.name, version=built["version"], store_block=block)
    assert row["result"] == "restarted" and "consolidated protocols changed" in row["detail"], row
    assert check.version(host) == built["version"] and check.beam_pid(host) != pid
    assert check.get(host.address, "/").startswith("Howdy"), "runtime.config after the restart"
