"""What to do with a host in each release state (pure)."""
import pytest

from hotdeploy.hostplan import (presumed_base, SPACE_MARGIN, Action, Footprint, HostReleases, NodeDown, decide_upgrade,
                               disk_shortfall, from_inspect)

INSPECT = {"releases": [{"vsn": "1.1.0", "status": "current"}, {"vsn": "1.0.0", "status": "permanent"}],
           "running": "1.1.0", "start_script": "1.0.0", "start_erl": "1.0.0", "os_pid": 42,
           "disk_free": 10 << 20, "target_missing": []}


def test_facts_come_from_the_node():
    state = from_inspect(INSPECT)
    assert state.statuses == {"1.1.0": "current", "1.0.0": "permanent"}
    assert state.running == "1.1.0" and state.permanent == "1.0.0" and state.boots == "1.0.0"
    assert state.pid == 42
    with pytest.raises(NodeDown):
        from_inspect({"releases": []})


def test_running_is_what_the_node_says_not_the_permanent_one():
    # restarted by a stale start script: v1 boots though v3 is permanent
    state = from_inspect({**INSPECT, "running": "1.0.0",
                          "releases": [{"vsn": "1.2.0", "status": "permanent"}, {"vsn": "1.0.0", "status": "old"}]})
    assert state.running == "1.0.0"
    assert decide_upgrade(state, "1.2.0", ["1.1.0"]).action is Action.REFUSE


def test_upgrade_from_the_version_the_relup_names():
    d = decide_upgrade(HostReleases({"1.0.0": "permanent"}), "1.1.0", ["1.0.0"])
    assert d.action is Action.INSTALL and d.needs_transfer


def test_already_unpacked_needs_no_transfer():
    d = decide_upgrade(HostReleases({"1.0.0": "permanent", "1.1.0": "unpacked"}), "1.1.0", ["1.0.0"])
    assert d.action is Action.INSTALL and not d.needs_transfer


def test_already_running_is_skipped_only_when_a_restart_boots_it_and_its_files_are_there():
    assert decide_upgrade(HostReleases({"1.1.0": "permanent"}, boots="1.1.0"), "1.1.0", ["1.0.0"]).action \
        is Action.SKIP
    stale = decide_upgrade(HostReleases({"1.1.0": "permanent"}, boots="1.0.0"), "1.1.0", ["1.0.0"])
    assert stale.action is Action.FINISH and "restart would boot 1.0.0" in stale.reason
    broken = decide_upgrade(HostReleases({"1.1.0": "permanent"}, missing=("vm.args",)), "1.1.0", ["1.0.0"])
    assert broken.action is Action.REFUSE and "vm.args" in broken.reason


def test_partly_unpacked_target_is_refused_with_what_to_do():
    d = decide_upgrade(HostReleases({"1.0.0": "permanent", "1.1.0": "unpacked"}, missing=("lib/x-1",)),
                       "1.1.0", ["1.0.0"])
    assert d.action is Action.REFUSE and "remove_release" in d.reason


def test_installed_but_not_permanent_is_finished_not_reinstalled():
    d = decide_upgrade(from_inspect(INSPECT), "1.1.0", ["1.0.0"])
    assert d.action is Action.FINISH


def test_relup_that_does_not_match_what_runs_is_refused_with_advice():
    d = decide_upgrade(HostReleases({"0.9.0": "permanent"}), "1.1.0", ["1.0.0"])
    assert d.action is Action.REFUSE
    assert "runs 0.9.0" in d.reason and "upgrades only from 1.0.0" in d.reason and "Deploy 1.0.0" in d.reason


def test_rollback_goes_down_only_where_the_running_relup_leads():
    host = HostReleases({"1.1.0": "permanent", "1.0.0": "old"})
    assert decide_upgrade(host, "1.0.0", [], down_to=["1.0.0"]).action is Action.INSTALL
    assert decide_upgrade(host, "0.9.0", [], down_to=["1.0.0"]).action is Action.REFUSE
    fresh = HostReleases({"1.1.0": "permanent"})
    assert "not installed" in decide_upgrade(fresh, "1.0.0", [], down_to=["1.0.0"]).reason


def test_disk_shortfall_counts_blocks_directories_and_a_margin():
    # 13 small files: 96,871 bytes, but 13 blocks of 4 KiB at least; the package too
    files = (30000, 20000, 15000, 10000, 8000, 5000, 3000, 2000, 1500, 1000, 800, 400, 171)
    fp = Footprint(package_bytes=21_000, file_sizes=files, directories=4)
    assert sum(files) == 96_871
    need = fp.on_disk(4096)
    assert need == (8 + 5 + 4 + 3 + 2 + 2 + 1 + 1 + 1 + 1 + 1 + 1 + 1) * 4096 + 6 * 4096 + 4 * 4096 + SPACE_MARGIN
    assert disk_shortfall(fp, need, 4096) is None
    assert disk_shortfall(fp, None, None) is None
    short = disk_shortfall(fp, 98_304, 4096)
    assert short.startswith("disk full: need 1.") and "4096-byte blocks" in short and "have 0.09 MiB" in short


def test_upgrade_package_only_for_hosts_on_its_base():
    from hotdeploy.hostplan import use_upgrade_package
    assert use_upgrade_package("1.0.0", "1.0.0")
    assert not use_upgrade_package("0.9.0", "1.0.0")
    assert not use_upgrade_package("1.0.0", None)


def test_rollback_target_per_host():
    from hotdeploy.hostplan import rollback_target
    host = HostReleases({"1.2.0": "permanent", "1.1.0": "old", "1.0.0": "old"}, running="1.2.0")
    assert rollback_target(host, "1.0.0", ["1.0.0", "1.1.0"])[0] == "1.0.0"      # what it ran before
    target, why = rollback_target(host, "0.9.0", ["1.0.0", "1.1.0"])
    assert target == "1.1.0" and "0.9.0, which it ran before, is not" in why    # newest below, reachable
    assert rollback_target(host, None, ["1.0.0"])[0] == "1.0.0"
    target, why = rollback_target(HostReleases({"1.2.0": "permanent"}, running="1.2.0"), None, ["1.1.0"])
    assert target is None and "no earlier release" in why and "to_version" in why


def test_the_strategy_decides_hot_or_restart_per_host():
    host = HostReleases({"1.0.0": "permanent"})
    edges = {"0.9.0": ("NIF library example_app/priv/x.so changed",)}
    assert decide_upgrade(host, "1.1.0", ["1.0.0"], strategy="auto").action is Action.INSTALL
    restart = decide_upgrade(host, "1.1.0", ["1.0.0"], strategy="restart")
    assert restart.action is Action.RESTART and restart.needs_transfer and "strategy restart" in restart.reason
    on_nif = HostReleases({"0.9.0": "permanent"})
    auto = decide_upgrade(on_nif, "1.1.0", ["1.0.0"], strategy="auto", restart_edges=edges)
    assert auto.action is Action.RESTART and "NIF library example_app/priv/x.so changed" in auto.reason
    hot = decide_upgrade(on_nif, "1.1.0", ["1.0.0"], strategy="hot", restart_edges=edges)
    assert hot.action is Action.REFUSE and hot.reason == (
        "host runs 0.9.0, which needs a restart to go to 1.1.0: NIF library example_app/priv/x.so changed. "
        "Deploy with strategy auto or restart")
    unrelated = decide_upgrade(HostReleases({"0.8.0": "permanent"}), "1.1.0", ["1.0.0"], strategy="auto")
    assert unrelated.action is Action.RESTART and "its relup does not go up from 0.8.0" in unrelated.reason


def test_a_rollback_restarts_back_where_no_relup_goes_down():
    host = HostReleases({"1.1.0": "permanent", "1.0.0": "old"})
    hot = decide_upgrade(host, "1.0.0", [], down_to=["1.0.0"], strategy="auto")
    assert hot.action is Action.INSTALL
    back = decide_upgrade(host, "1.0.0", [], down_to=[], strategy="auto")
    assert back.action is Action.RESTART and not back.needs_transfer and "relup does not go down" in back.reason
    assert decide_upgrade(host, "1.0.0", [], down_to=[], strategy="hot").action is Action.REFUSE
    assert decide_upgrade(host, "0.5.0", [], down_to=[], strategy="auto").action is Action.REFUSE


def test_a_hot_only_deploy_is_refused_from_the_record_naming_the_hosts():
    from hotdeploy.hostplan import needing_restart
    record = [{"host": "web-1", "running": "1.0.0"}, {"host": "web-2", "running": "0.9.0"},
              {"host": "web-3", "running": "1.1.0"}, {"host": "web-4", "running": None}]
    assert needing_restart(record, "1.1.0", ["1.0.0", "0.9.0"], {"0.9.0": ("NIF library a.so changed",)}) == [
        "web-2 runs 0.9.0: NIF library a.so changed"]
    assert needing_restart(record, "1.1.0", ["1.0.0"], {}) == ["web-2 runs 0.9.0: its relup does not go up from 0.9.0"]


def test_a_rollback_that_may_restart_goes_back_to_any_earlier_release_still_on_the_host():
    from hotdeploy.hostplan import rollback_target
    host = HostReleases({"1.1.0": "permanent", "1.0.0": "old"}, running="1.1.0")
    assert rollback_target(host, "1.0.0", [], "auto") == ("1.0.0", "back to 1.0.0, which this host ran before 1.1.0")
    assert rollback_target(host, None, [], "auto")[0] == "1.0.0"
    assert rollback_target(host, "1.0.0", [], "hot")[0] is None, "hot only: no relup goes down there"


def test_a_rollback_never_goes_up_to_what_the_host_was_rolled_back_from():
    from hotdeploy.hostplan import rollback_target
    host = HostReleases({"1.0.0": "permanent", "1.2.0": "old"}, running="1.0.0")
    target, why = rollback_target(host, "1.2.0", ["0.9.0"], "auto")
    assert target is None and "no earlier release to go back to" in why


def test_one_exchange_only_for_a_host_recorded_on_the_package_base_that_goes_up_hot():
    entry = {"host": "h1", "running": "1.0.1", "permanent": "1.0.1", "at": "t"}
    args = ("1.0.2", "1.0.1", ["1.0.1"], "auto", {})
    assert presumed_base(entry, *args) == "1.0.1"
    assert presumed_base(entry, "1.0.2", "1.0.1", ["1.0.1"], "hot", {}) == "1.0.1"
    assert presumed_base(None, *args) is None, "a host the record does not know: asked first"
    assert presumed_base({**entry, "note": "not read by hot-deploy at t"}, *args) is None, "versions not read: asked"
    assert presumed_base({**entry, "permanent": "1.0.0"}, *args) is None, "installed, not permanent: asked"
    assert presumed_base({**entry, "running": "1.0.0", "permanent": "1.0.0"}, *args) is None, "not on the base"
    assert presumed_base(entry, "1.0.1", "1.0.1", ["1.0.1"], "auto", {}) is None, "already there"
    assert presumed_base(entry, "1.0.2", None, ["1.0.1"], "auto", {}) is None, "no upgrade package"
    assert presumed_base(entry, "1.0.2", "1.0.1", ["1.0.1"], "restart", {}) is None
    assert presumed_base(entry, "1.0.2", "1.0.1", ["1.0.1"], "auto", {"1.0.1": ("a NIF changed",)}) is None
