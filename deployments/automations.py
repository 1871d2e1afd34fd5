"""The automation that marks a silent flow run *Crashed* (Prefect's zombie-run
recipe): every flow run sends a heartbeat event each
PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds; a run that sent one and then
neither another nor a final state within `within_seconds` had its process
(or its machine) die. Marked *Crashed*, it stops showing *Running* for ever,
and `sweep-ingress` revokes the SSH rule it left (a rule whose run is final
is revoked).
"""
from __future__ import annotations

import asyncio
from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

NAME = "hotdeploy: mark silent flow runs crashed"
MISSED_HEARTBEATS = 3


def crash_detection(within_seconds: int) -> AutomationCore:
    return AutomationCore(
        name=NAME,
        description=f"A flow run with no heartbeat and no final state for {within_seconds} s "
                    "lost its process: mark it Crashed (the sweep then revokes its SSH rule).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_seconds),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"no heartbeat for {within_seconds} s: the run's process died")],
    )


def default_within_seconds() -> int:
    from prefect.settings import get_current_settings
    return MISSED_HEARTBEATS * (get_current_settings().flows.heartbeat_frequency or 180)


async def ensure_crash_detection(within_seconds: int | None = None) -> None:
    """Create the automation, or bring an existing one (same name) to
    `within_seconds`; idempotent, so setup and apply can both call it."""
    wanted = crash_detection(within_seconds or default_within_seconds())
    async with get_client() as client:
        existing = await client.read_automations_by_name(NAME)
        if existing:
            await client.update_automation(existing[0].id, wanted)
            for extra in existing[1:]:
                await client.delete_automation(extra.id)
        else:
            await client.create_automation(wanted)


def ensure_crash_detection_sync(within_seconds: int | None = None) -> None:
    asyncio.run(ensure_crash_detection(within_seconds))
