"""Where a deploy suspended for an approval is kept (a Prefect variable per
environment, beside its lock; hotdeploy/awaiting.py), and the calls the
sweep makes on it. Plain calls, not tasks: each is one request to Prefect."""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

from hotdeploy.awaiting import Awaiting, variable_name
from tasks.lock import prefect_client

SWEEP_DEPLOYMENT = "sweep-ingress/all"      # deployments/apply.py


def read_awaiting(environment: str) -> Awaiting | None:
    with prefect_client() as client:
        found = client.read_variable_by_name(variable_name(environment))
    return Awaiting.from_json(found.value) if found is not None else None


def write_awaiting(awaiting: Awaiting) -> None:
    from prefect.client.schemas.actions import VariableCreate
    clear_awaiting(awaiting.environment)        # one left by a run that ended without resuming
    with prefect_client() as client:
        client.create_variable(VariableCreate(name=variable_name(awaiting.environment), value=awaiting.to_json(),
                                              tags=["hotdeploy"]))


def clear_awaiting(environment: str) -> None:
    from prefect.exceptions import ObjectNotFound
    try:
        with prefect_client() as client:
            client.delete_variable_by_name(variable_name(environment))
    except ObjectNotFound:
        pass


def run_state(run_id: str) -> str | None:
    """The run's state type (PAUSED for a suspended run), None if it is gone."""
    from prefect.exceptions import ObjectNotFound
    try:
        with prefect_client() as client:
            return client.read_flow_run(UUID(run_id)).state.type.value
    except ObjectNotFound:
        return None


def answer_timeout(awaiting: Awaiting) -> None:
    """Resume the suspended run with a refusal: it starts again on its pool,
    finds its deadline passed, and takes its canary back."""
    from prefect.flow_runs import resume_flow_run
    resume_flow_run(UUID(awaiting.run_id), run_input={
        "approve": False, "comment": f"no approval within {awaiting.timeout_s:g} s (answered by the sweep)"})


def schedule_sweep(environment: str, at: datetime) -> str | None:
    """A run of the sweep deployment on ENVIRONMENT at AT (the approval's
    deadline), so a timeout is answered then and not at the next cron tick;
    its id, or None if there is no sweep deployment (the cron's or a manual
    sweep answers it)."""
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Scheduled
    with prefect_client() as client:
        try:
            deployment = client.read_deployment_by_name(SWEEP_DEPLOYMENT)
        except ObjectNotFound:
            return None
        run = client.create_flow_run_from_deployment(deployment.id, parameters={"environments": [environment]},
                                                     state=Scheduled(scheduled_time=at),
                                                     name=f"approval-deadline-{environment}")
        return str(run.id)
