"""The automation that marks dead runs Crashed, as text (no server)."""
from datetime import timedelta

from deployments.automations import crash_detection


def test_a_run_silent_for_the_window_after_a_heartbeat_is_marked_crashed():
    a = crash_detection(90).model_dump(mode="json")
    trigger = a["trigger"]
    assert trigger["posture"] == "Proactive" and trigger["within"] == timedelta(seconds=90).total_seconds()
    assert trigger["after"] == ["prefect.flow-run.heartbeat"]
    # one count per flow run; a final state ends the wait as a heartbeat does
    assert trigger["for_each"] == ["prefect.resource.id"]
    assert set(trigger["expect"]) == {"prefect.flow-run.heartbeat", "prefect.flow-run.Completed",
                                      "prefect.flow-run.Failed", "prefect.flow-run.Cancelled",
                                      "prefect.flow-run.Crashed"}
    assert [(x["type"], x["state"]) for x in a["actions"]] == [("change-flow-run-state", "CRASHED")]
