"""What to do with a host in each release state (pure)."""
import pytest

from hotdeploy.hostplan import Action, HostReleases, NodeDown, decide_upgrade, parse_versions

VERSIONS = "Installed versions:\n* 1.1.0\tcurrent\n* 1.0.0\tpermanent\n"


def test_parse_versions():
    state = parse_versions(VERSIONS)
    assert state.statuses == {"1.1.0": "current", "1.0.0": "permanent"}
    assert state.running == "1.1.0" and state.permanent == "1.0.0"
    assert parse_versions("Installed versions:\n* 1.0.0\tpermanent\n").running == "1.0.0"
    with pytest.raises(NodeDown):
        parse_versions("Node is not running!\n")


def test_upgrade_from_the_version_the_relup_names():
    d = decide_upgrade(HostReleases({"1.0.0": "permanent"}), "1.1.0", ["1.0.0"])
    assert d.action is Action.INSTALL and d.needs_transfer


def test_already_unpacked_needs_no_transfer():
    d = decide_upgrade(HostReleases({"1.0.0": "permanent", "1.1.0": "unpacked"}), "1.1.0", ["1.0.0"])
    assert d.action is Action.INSTALL and not d.needs_transfer


def test_already_running_is_skipped():
    assert decide_upgrade(HostReleases({"1.1.0": "permanent"}), "1.1.0", ["1.0.0"]).action is Action.SKIP


def test_installed_but_not_permanent_is_finished_not_reinstalled():
    d = decide_upgrade(parse_versions(VERSIONS), "1.1.0", ["1.0.0"])
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
