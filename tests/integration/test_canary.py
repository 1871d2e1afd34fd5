"""A gate that watches how the service behaves: a canary judged against the
hosts still on the old version (same window, same probes from inside the
nodes), quarantine of what fails, a stability window before the commit, and
an approval given or refused through the API as the UI does. Real releases
that misbehave without crashing, real hosts, load."""
from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid

import pytest

from tests.integration import fleet_checks as check
from tests.integration.conftest import checkout, copy_store

pytestmark = [pytest.mark.integration]
APP = "example_app"
ROOT = f"/srv/{APP}"


def provision(env, block: str, vsn: str) -> None:
    from flows.provision import provision_host
    provision_host(app=APP, environment=env.name, version=vsn, store_block=block)


def permanent(host) -> str:
    expr = "[V || {_, V, _, permanent} <- release_handler:which_releases()]."
    return host.run(f"cd {ROOT} && echo '{expr}' | erts-*/bin/erl_call -name {APP}@127.0.0.1 -e").stdout.split('"')[1]


def test_a_slower_release_and_one_that_answers_errors_stop_at_the_canary_and_are_quarantined(
        make_env, releases, moto_url, tmp_path_factory):
    from flows.deploy import hot_deploy
    from flows.release import release
    from tasks.probe import LoadClient
    from tests.integration.test_deploy import _latest_artifact
    block, client, bucket = copy_store(releases, moto_url, ["v1", "v2"])
    v2 = releases.versions["v2"]
    # 4 s windows: the slow variant answers in 100 ms, so its canary makes 40 probes at most (a fail
    # needs 5 a side, a pass 30)
    env = make_env(3, canary=1, wave_size="100%", probe_path="/", health_soak_seconds=4.0)
    provision(env, block, v2)
    pids = [check.beam_pid(h) for h in env.fleet.hosts]
    canary = env.fleet.hosts[0].name
    for variant, signal in (("slow-endpoint", "latency: p50"), ("errors-endpoint", "errors: ")):
        vsn = release(app_dir=str(checkout(tmp_path_factory, variant)), store_block=block)["version"]
        # The load asks another path than the probes: the errors variant fails every tenth request
        # to /, so the probes see exactly one in ten fail. Sharing / with the load made each probe
        # fail at random one time in ten, and the 10-40 probes of a window all passed often enough
        # (0.9^10 = 35 %, 0.9^40 = 1.5 %) that the canary passed in two of four runs here.
        with LoadClient([h.address for h in env.fleet.hosts], connections=1, max_seconds=120,
                        path="/api/public/version"):
            state = hot_deploy(app=APP, environment=env.name, version=vsn, store_block=block, return_state=True)
        assert state.is_failed() and state.message.startswith(f"canary fail: {signal}"), state.message
        assert f"every host that had {vsn} was taken back" in state.message
        rows = {o.host: o.as_row() for o in state.result(raise_on_failure=False).outcomes}
        assert rows[canary]["result"] == "taken back", rows[canary]
        assert {r["result"] for h, r in rows.items() if h != canary} == {"not started"}
        assert [check.version(h) for h in env.fleet.hosts] == [v2] * 3
        assert [permanent(h) for h in env.fleet.hosts] == [v2] * 3
        assert [check.beam_pid(h) for h in env.fleet.hosts] == pids
        figures = str(_latest_artifact(f"hot-deploy-canary-{env.name}").data)
        assert "p99_ms" in figures and "baseline" in figures, figures
        record = json.loads(client.get_object(Bucket=bucket, Key=f"{APP}/{vsn}.quarantine.json")["Body"].read())
        assert record["reason"].startswith(f"canary fail: {signal}") and record["environment"] == env.name
        again = hot_deploy(app=APP, environment=env.name, version=vsn, store_block=block, return_state=True)
        assert again.is_failed() and "quarantined" in again.message, again.message
        ran = check.task_runs(again.state_details.flow_run_id, until=lambda names: len(names) >= 2)
        assert sorted(n.rsplit("-", 1)[0] for n in ran) == ["discover_hosts", "read_deploy_inputs"], \
            f"refused after reading the store and EC2 once each (the read-ahead), no lock, rule or host: {ran}"
    # each verdict is a Prefect event, and the automation the docs show fires on it as the server stores it
    from prefect.server.events.schemas.automations import AutomationCore
    from prefect.server.events.schemas.events import ReceivedEvent
    said = check.events("hotdeploy.canary.fail", f"hotdeploy.environment.{env.name}")
    assert len(said) == 2 and {e["payload"]["app"] for e in said} == {APP}, said
    automation = check.documented_automation("docs/flows.md", "hotdeploy.canary.fail")
    automation["actions"][0]["block_document_id"] = str(uuid.uuid4())
    trigger = AutomationCore.model_validate(automation).trigger
    assert all(trigger.covers(ReceivedEvent.model_validate(e)) for e in said)

    good = release(app_dir=str(checkout(tmp_path_factory, "v3")), store_block=block)["version"]
    rows = hot_deploy(app=APP, environment=env.name, version=good, store_block=block)
    assert [r["result"] for r in rows] == ["upgraded"] * 3
    assert "canary pass" in str(_latest_artifact(f"hot-deploy-canary-{env.name}").description)
    assert [permanent(h) for h in env.fleet.hosts] == [good] * 3


def test_a_node_that_stops_inside_the_stability_window_takes_the_whole_environment_back(
        make_env, releases, moto_url, tmp_path_factory):
    """Every host keeps the new release installed but not permanent for the
    window; one node stops 20 s in and its service manager starts it again:
    it boots the old release, the flow sees it and takes every host back."""
    from flows.deploy import hot_deploy
    from flows.release import release
    block, client, bucket = copy_store(releases, moto_url, ["v1", "v2"])
    v2 = releases.versions["v2"]
    env = make_env(2, commit_after_seconds=600)
    provision(env, block, v2)
    halts = release(app_dir=str(checkout(tmp_path_factory, "halts-later")), store_block=block)["version"]
    stop = threading.Event()

    def service_manager():      # what systemd's Restart= does for a node that exits
        while not stop.is_set():
            for h in env.fleet.hosts:
                if not [p for p in h.pids() if check.is_beam(p)]:
                    h.run(f"cd {ROOT} && timeout 60 {ROOT}/bin/{APP} daemon </dev/null >/dev/null 2>&1", check=False)
            stop.wait(0.5)
    threading.Thread(target=service_manager, daemon=True).start()
    try:
        state = hot_deploy(app=APP, environment=env.name, version=halts, store_block=block, return_state=True)
    finally:
        stop.set()
    # the window's ask may find the node down (stopped, not started again yet) or restarted: both end it
    assert state.is_failed() and re.search(r"(restarted|stopped answering) during the stability window",
                                           state.message), state.message
    # counted, not timed: the window asks both nodes every 5 s, 240 asks in 600 s
    asks = [n for n in check.task_runs(state.state_details.flow_run_id, until=bool) if n.startswith("status-")]
    assert 0 < len(asks) < 120, f"the window ends when a node restarts, not at its end: {len(asks)} asks"
    assert [check.version(h) for h in env.fleet.hosts] == [v2, v2]
    assert [permanent(h) for h in env.fleet.hosts] == [v2, v2]
    assert client.get_object(Bucket=bucket, Key=f"{APP}/{halts}.quarantine.json")


def _resume_when_paused(answer: dict | None, seen: list) -> threading.Thread:
    """Wait for a paused hot-deploy run and resume it with ANSWER (the UI's
    form), or leave it paused (None)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    async def paused():
        async with get_client() as client:
            return await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))

    def run():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = [r for r in asyncio.run(paused()) if r.id not in seen]
            if runs:
                seen.append(runs[0].id)
                if answer is not None:
                    resume_flow_run(runs[0].id, run_input=answer)
                return
            time.sleep(0.5)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_an_approval_given_and_one_refused_through_the_api_and_one_that_times_out(make_env, releases, moto_url):
    from blocks import load_environment
    from flows.deploy import hot_deploy
    from flows.rollback import rollback
    block, client, bucket = copy_store(releases, moto_url, ["v1", "v2", "v3"])
    v2, v3 = releases.versions["v2"], releases.versions["v3"]
    env = make_env(2, canary=1, wave_size="100%", approval=True, approval_timeout_seconds=60,
                   health_soak_seconds=2.0)
    provision(env, block, v2)
    seen: list = []

    waiter = _resume_when_paused({"approve": True, "comment": "figures look right"}, seen)
    rows = hot_deploy(app=APP, environment=env.name, version=v3, store_block=block)
    waiter.join()
    assert [r["result"] for r in rows] == ["upgraded", "upgraded"] and len(seen) == 1
    rollback(app=APP, environment=env.name, store_block=block)

    waiter = _resume_when_paused({"approve": False, "comment": "p99 too high"}, seen)
    state = hot_deploy(app=APP, environment=env.name, version=v3, store_block=block, return_state=True)
    waiter.join()
    assert state.is_failed() and state.message.startswith("approval refused: p99 too high"), state.message
    assert [check.version(h) for h in env.fleet.hosts] == [v2, v2]
    assert "approval refused" in json.loads(
        client.get_object(Bucket=bucket, Key=f"{APP}/{v3}.quarantine.json")["Body"].read())["reason"]

    quick = load_environment(env.name)
    quick.approval_timeout_seconds = 5
    quick.save(env.name, overwrite=True)
    state = hot_deploy(app=APP, environment=env.name, version=v3, store_block=block, allow_quarantined=True,
                       return_state=True)
    assert state.is_failed() and state.message.startswith("no approval within 5 s"), state.message
    assert [check.version(h) for h in env.fleet.hosts] == [v2, v2]
