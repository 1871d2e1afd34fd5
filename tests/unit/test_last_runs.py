from types import SimpleNamespace

from prefect.states import Completed, Failed

from deployments.report import last_run_row


def run(state):
    return SimpleNamespace(name="brave-otter", state=state)


def test_a_deployment_is_green_when_its_last_run_completed():
    assert last_run_row("ship/staging", run(Completed(message="shipped")))["ok"]
    assert not last_run_row("ship/staging", run(Failed(message="no")))["ok"]


def test_no_run_yet_is_red_unless_only_a_deploy_starts_that_deployment():
    assert last_run_row("ship/staging", None) == {"deployment": "ship/staging", "run": None, "state": "no run yet",
                                                  "message": "", "ok": False}
    shard = last_run_row("deploy-shard/staging", None, started_by_a_run=True)
    assert shard["ok"] and shard["state"] == "-"
    assert not last_run_row("deploy-shard/staging", run(Failed()), started_by_a_run=True)["ok"], \
        "a shard that ran is judged by its run"
