"""Rollout in waves on a real fleet: a canary, then waves, stopping at the
first failure unless the run allows more."""
from __future__ import annotations

import pytest

from tests.integration import fleet_checks as check
from tests.integration.conftest import checkout, copy_store

pytestmark = [pytest.mark.integration]
APP = "example_app"


def test_waves_stop_at_the_first_failed_host_and_go_on_when_allowed(make_env, releases, moto_url,
                                                                   tmp_path_factory):
    from flows.deploy import hot_deploy
    from flows.fleet import FleetFailed
    from flows.provision import provision_host
    from flows.release import release
    from tests.integration.test_deploy import _latest_table_artifact
    block, _, _ = copy_store(releases, moto_url, ["v1", "v2"])
    v2 = releases.versions["v2"]
    bad = release(app_dir=str(checkout(tmp_path_factory, "bad-health")), store_block=block)["version"]
    env = make_env(6, canary=1, wave_size="2", max_parallel=2)
    hosts = env.fleet.hosts
    provision_host(app=APP, environment=env.name, version=v2, store_block=block)
    (hosts[2].dir / "tmp" / "break-health").touch()       # the 3rd host's gate will fail

    with pytest.raises(FleetFailed) as failure:
        hot_deploy(app=APP, environment=env.name, version=bad, store_block=block)
    text = str(failure.value)
    assert text.startswith(f"1 of 6 host(s) did not finish: {hosts[2].name}: rolled back"), text
    assert "3 host(s) not started" in text
    (hosts[2].dir / "tmp" / "break-health").unlink()
    assert [check.version(h) for h in hosts] == [bad, bad, v2, v2, v2, v2]
    summary = _latest_table_artifact(f"hot-deploy-{env.name}")
    assert summary.count("not started") >= 3

    # the failed gate quarantined the version: the operator knows and deploys it again anyway
    (hosts[4].dir / "tmp" / "break-health").touch()
    with pytest.raises(FleetFailed) as failure:
        hot_deploy(app=APP, environment=env.name, version=bad, store_block=block, max_failed_hosts=1,
                   allow_quarantined=True)
    (hosts[4].dir / "tmp" / "break-health").unlink()
    assert hosts[4].name in str(failure.value) and "not started" not in str(failure.value)
    assert [check.version(h) for h in hosts] == [bad, bad, bad, bad, v2, bad], "one failure allowed: went on"
