"""The README's main command, through the same code path (`python -m demo
run`), against this session's Prefect server and moto: a real `process`
worker runs every deployment by `prefect deployment run ... --watch`, on
three fleets (staging, rehearsal, production)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration]


def test_demo_ships_v2_through_every_environment_then_a_restart_release_with_every_deployment_green(
        docker_engine, prefect_server, moto_url, tmp_path):
    state = tmp_path / "demo"
    env = {**os.environ, "HOTDEPLOY_DEMO_DIR": str(state)}
    try:
        cp = subprocess.run([sys.executable, "-m", "demo", "run", "--keep", "--moto-url", moto_url],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
        assert cp.returncode == 0, cp.stdout[-4000:] + cp.stderr[-4000:]
        report = json.loads((state / "report.json").read_text())
        assert report["ship_exit_code"] == 0
        assert report["requests"]["failed"] == 0 and report["requests"]["sent"] > 100
        for host in report["hosts"]:
            assert host["pid_before"] == host["pid_after"] is not None
            assert host["version_after"] != host["version_before"]
        assert {h["environment"] for h in report["hosts"]} == {"staging", "production"}
        assert "hotdeploy demo report" in cp.stdout
        # the gate story: production refused v2 until the rehearsal passed, then took it
        runs = [(s["deployment"], s["exit_code"]) for s in report["steps"]]
        assert runs.index(("hot-deploy/production", 1)) < runs.index(("rehearsal/rehearsal", 0)) \
            < runs.index(("hot-deploy/production", 0)), runs
        refused = next(s for s in report["steps"] if s["deployment"] == "hot-deploy/production")
        assert "never rehearsed" in refused["line"], refused
        assert all(s["as_expected"] for s in report["steps"]), report["steps"]
        # every deployment's last run is green, read from the API (the sweep's included)
        green = {d["deployment"]: d["ok"] for d in report["deployments"]}
        assert green == {name: True for name in (
            "hot-deploy/production", "provision-host/staging", "rehearsal/rehearsal", "rollback/production",
            "ship/staging", "status/production", "status/staging", "sweep-ingress/all",
            # no wave of the demo is sharded: these have no run, which is fine for them
            "deploy-shard/production", "deploy-shard/rehearsal", "deploy-shard/staging")}, report["deployments"]
        listed = subprocess.run([sys.executable, "-m", "deployments.report", "--all"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0 and "sweep-ingress/all" in listed.stdout, listed.stdout + listed.stderr
        # then a release that cannot be hot-loaded (a changed NIF) went to staging by a rolling
        # restart: new nodes there, each down a few seconds; production lost no request meanwhile
        restart = report["restart"]
        assert restart["ok"] and restart["release"] == "nif-2", restart
        staging = [h for h in restart["hosts"] if h["environment"] == "staging"]
        assert [h["result"] for h in staging] == ["restarted", "restarted"]
        assert all(h["down_seconds"] > 0 and h["pid_after"] != h["pid_before"] for h in staging), staging
        assert all(h["failed"] == 0 for h in restart["hosts"] if h["environment"] == "production"), restart
        # what a CI log shows after --watch: the one line (version, hosts) and the ship's summary
        shipped = subprocess.run([sys.executable, "-m", "deployments.report", "--latest", "ship/staging"],
                                 cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert shipped.returncode == 0, shipped.stdout + shipped.stderr
        version = staging[0]["version_after"]
        assert f"shipped example_app {version}" in shipped.stdout and "2 restarted" in shipped.stdout, shipped.stdout
        assert "NIF library example_app/priv/example_app_nif.so changed" in shipped.stdout, shipped.stdout

        # A push whose tests fail: the deployment run fails, --watch exits non-zero, the fleet is unchanged.
        repo = state / "app"
        sys.path.insert(0, str(ROOT))
        from demo.__main__ import _commit_version, fleet_view
        sha = _commit_version(repo, "broken-tests")
        fleet = json.loads((state / "fleet.json").read_text())["environments"]["staging"]["hosts"]
        before = fleet_view(fleet)
        failed = subprocess.run([sys.executable, "-m", "prefect", "deployment", "run", "ship/staging",
                                 "--param", f"git_ref={sha}", "--watch"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert failed.returncode != 0, failed.stdout[-2000:]
        assert fleet_view(fleet) == before
        why = subprocess.run([sys.executable, "-m", "deployments.report", "--latest", "ship/staging"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert why.returncode == 1
        assert "tests failed: example_app_broken_tests:greeting_is_polite_test/0" in why.stdout, why.stdout
    finally:
        subprocess.run([sys.executable, "-m", "demo", "down"], cwd=ROOT, env=env, timeout=120)
