"""One deploy per environment at a time (a Prefect global concurrency limit
per environment), rules that survive nobody's mistake, and parameters
refused before anything runs. Real Prefect server, moto, namespace hosts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

from tests.conftest import ROOT
from tests.integration import fleet_checks as check

pytestmark = [pytest.mark.integration]
APP = "example_app"


def provision(env, releases, name: str = "v1") -> None:
    from flows.provision import provision_host
    provision_host(app=APP, environment=env.name, version=releases.versions[name], store_block=releases.block)


def wait_for_rule(env, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not env.ssh_rules():
        assert time.monotonic() < deadline, "no SSH rule appeared"
        time.sleep(0.02)


def test_two_deploys_on_one_environment_take_turns_and_both_end_green(make_env, releases):
    from flows.deploy import hot_deploy
    env = make_env(2)
    provision(env, releases)
    v2 = releases.versions["v2"]
    results: dict[str, list] = {}

    def deploy(name: str) -> None:
        results[name] = hot_deploy(app=APP, environment=env.name, version=v2, store_block=releases.block)
    runs = [threading.Thread(target=deploy, args=(n,)) for n in ("a", "b")]
    for t in runs:
        t.start()
    for t in runs:
        t.join(300)
    outcomes = sorted(tuple(r["result"] for r in rows) for rows in results.values())
    assert outcomes == [("already running", "already running"), ("upgraded", "upgraded")], results
    assert [check.version(h) for h in env.fleet.hosts] == [v2, v2]
    assert env.ssh_rules() == []


def test_a_killed_deploy_frees_the_lock_and_the_next_one_removes_its_rule(make_env, releases):
    from flows.deploy import hot_deploy
    from tasks.lock import LEASE_SECONDS
    env = make_env(2, lock_timeout_seconds=LEASE_SECONDS + 45)   # the next run fails if the lock never comes back
    provision(env, releases)
    env.ec2.authorize_security_group_ingress(GroupId=env.group_id, IpPermissions=[   # someone else's, kept
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "IpRanges": [{"CidrIp": "192.0.2.0/24", "Description": "office bastion"}]}])
    v2 = releases.versions["v2"]
    code = (f"from flows.deploy import hot_deploy; hot_deploy(app={APP!r}, environment={env.name!r}, "
            f"version={v2!r}, store_block={releases.block!r})")
    victim = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(env.ssh_rules()) < 2:
        assert time.monotonic() < deadline and victim.poll() is None, "the deploy never opened its rule"
        time.sleep(0.02)
    os.killpg(victim.pid, signal.SIGKILL)      # between authorize and revoke: no finally, no hook
    victim.wait()
    assert len(env.ssh_rules()) == 2, "the dead run's rule is still open"

    # the lock came back once the lease ran out: this run got it within its lock timeout
    rows = hot_deploy(app=APP, environment=env.name, version=v2, store_block=releases.block)
    assert {r["result"] for r in rows} <= {"upgraded", "already running"}
    assert [check.version(h) for h in env.fleet.hosts] == [v2, v2]
    assert [(r.cidr, r.description) for r in env.ssh_rules()] == [("192.0.2.0/24", "office bastion")]


def test_the_sweep_skips_an_environment_a_deploy_holds_and_a_missing_block(make_env, releases):
    from flows.deploy import hot_deploy
    from flows.sweep import sweep_ingress
    env = make_env(1, health_soak_seconds=6)       # the deploy holds its rule for a while
    provision(env, releases)
    swept: dict = {}

    def sweep_once_our_rule_is_up() -> None:
        wait_for_rule(env)
        swept.update(sweep_ingress(environments=[env.name, "no-such-environment"], lock_wait_seconds=1))
        swept["rules during"] = len(env.ssh_rules())
    sweeper = threading.Thread(target=sweep_once_our_rule_is_up)
    sweeper.start()
    rows = hot_deploy(app=APP, environment=env.name, version=releases.versions["v2"], store_block=releases.block)
    sweeper.join(60)
    assert [r["result"] for r in rows] == ["upgraded"]
    assert swept == {"rules during": 1}, "the deploy's rule was kept, the missing block skipped"


def test_a_rule_someone_relabels_during_our_deploy_is_theirs_and_stays(make_env, releases):
    from flows.deploy import hot_deploy
    env = make_env(1)
    provision(env, releases)

    def relabel() -> None:
        wait_for_rule(env)
        [rule] = env.ssh_rules()
        env.ec2.update_security_group_rule_descriptions_ingress(GroupId=env.group_id, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
             "IpRanges": [{"CidrIp": rule.cidr, "Description": "ops: keep open"}]}])
    t = threading.Thread(target=relabel)
    t.start()
    rows = hot_deploy(app=APP, environment=env.name, version=releases.versions["v2"], store_block=releases.block)
    t.join(60)
    assert [r["result"] for r in rows] == ["upgraded"]
    assert [r.description for r in env.ssh_rules()] == ["ops: keep open"]


BAD_APPS = ["a/b", "../../../../usr/bin/env", "my app", "x;touch /tmp/pwned", "$(id)"]
BAD_VERSIONS = ["1" * 10_000, "1.2." + "3" * 300]


def test_bad_parameters_are_refused_before_anything_runs(make_env, releases, prefect_server):
    from flows.deploy import hot_deploy
    from flows.provision import provision_host
    from flows.rehearsal import rehearsal
    from flows.release import release
    from flows.rollback import rollback
    from flows.status import status
    from flows.sweep import sweep_ingress
    env = make_env(1)
    block = releases.block
    calls = [lambda a=a: f(app=a, environment=env.name) for a in BAD_APPS for f in (status, hot_deploy, rollback,
                                                                                  provision_host, rehearsal)]
    calls += [lambda v=v: hot_deploy(app=APP, environment=env.name, version=v, store_block=block)
              for v in BAD_VERSIONS]
    calls += [lambda v=v: rollback(app=APP, environment=env.name, to_version=v) for v in BAD_VERSIONS]
    calls += [lambda v=v: release(app_dir=str(ROOT / "examples" / "example_app"), store_block=block, version=v)
              for v in BAD_VERSIONS]
    calls += [lambda kw=kw: hot_deploy(app=APP, environment=env.name, **kw)
              for kw in (dict(canary=-1), dict(wave_size="0"), dict(wave_size="150%"), dict(max_failed_hosts=-1))]
    calls += [lambda: status(app=APP, environment="../etc"), lambda: sweep_ingress(environments=["Bad Name"])]
    since = datetime.now(timezone.utc)
    for call in calls:
        with pytest.raises(ValueError) as refused:
            call()
        assert len(str(refused.value).splitlines()) == 1 and len(str(refused.value)) < 400
    # Refused before anything ran: not one task run (no S3, no EC2, no container, no host).
    # How fast is a benchmark question; here: nothing started.
    assert task_runs_since(since) == [], "a refused run started work"
    assert env.ssh_rules() == [], "no rule was opened for a refused run"
    assert not os.path.exists("/tmp/pwned")


def task_runs_since(since) -> list[str]:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime

    async def read() -> list[str]:   # every task run of the flow runs started since SINCE
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(
                start_time=FlowRunFilterStartTime(after_=since)))
            return [r.name for r in runs]
    return asyncio.run(read())
