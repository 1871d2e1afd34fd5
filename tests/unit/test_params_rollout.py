"""Parameter checks and the wave planner (pure)."""
import pytest

from hotdeploy import params
from hotdeploy.params import BadParameter
from hotdeploy.rollout import may_continue, plan_waves


@pytest.mark.parametrize("app", ["../../../../usr/bin/env", "my app", "a/b", "x;rm -rf /", "App", "", "é", "a" * 65, 5])
def test_app_names_that_are_not_release_names_are_refused(app):
    with pytest.raises(BadParameter, match="is not a release name"):
        params.app_name(app)


def test_versions_are_bounded_then_parsed():
    assert params.version("latest") == "latest"
    assert params.version("2026.1126.113045") == "2026.1126.113045"
    for bad in ("1" * 10_000, "1.2." + "3" * 300, "1.0; rm -rf /", "", "1.02.3"):
        with pytest.raises(ValueError, match="invalid version") as e:
            params.version(bad)
        assert len(str(e.value)) < 300
    with pytest.raises(ValueError):
        params.version("latest", allow_latest=False)


def test_block_names():
    assert params.block_name("environment", "staging") == "staging"
    for bad in ("Staging", "a b", "../x", "", "x" * 101, None):
        with pytest.raises(BadParameter):
            params.block_name("environment", bad)


@pytest.mark.parametrize("kw", [dict(canary=-1), dict(max_failed_hosts=-2), dict(wave_size="0"),
                                dict(wave_size="150%"), dict(wave_size="-3"), dict(wave_size="0%"),
                                dict(wave_size="x"), dict(canary=True)])
def test_rollout_numbers(kw):
    with pytest.raises(BadParameter):
        params.rollout(**kw)


def test_waves():
    assert plan_waves(6, 1, "2") == [[0], [1, 2], [3, 4], [5]]
    assert plan_waves(6, 0, "100%") == [[0, 1, 2, 3, 4, 5]]
    assert plan_waves(8, 1, "25%") == [[0], [1, 2], [3, 4], [5, 6], [7]]
    assert plan_waves(1, 1, "25%") == [[0]]
    assert plan_waves(3, 5, "1") == [[0, 1, 2]]
    assert plan_waves(0, 1, "1") == []


def test_stop_rule():
    assert may_continue(0, 0) and not may_continue(1, 0) and may_continue(1, 1)


def test_hosts_read_before_the_lock_are_read_again_only_after_a_long_wait():
    from tasks.network import READ_AHEAD_FRESH_S, read_ahead_holds
    assert read_ahead_holds(0.0) and read_ahead_holds(READ_AHEAD_FRESH_S - 0.1)
    assert not read_ahead_holds(READ_AHEAD_FRESH_S) and not read_ahead_holds(600)
