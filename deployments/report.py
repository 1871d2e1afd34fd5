"""What a run did, for a CI log: its final state and message (one line: what
shipped, or why not) and the summary artifacts it made.

  prefect deployment run 'ship/staging' --param git_ref=$SHA --watch; rc=$?
  python -m deployments.report --latest ship/staging; exit $rc
  (python -m deployments.run ship/staging -p git_ref=$SHA does both, for the run it started)

  python -m deployments.report --all     every deployment's last run (exit 1 unless all Completed)

Only the Prefect client: a CI job needs nothing else installed.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, DeploymentFilter,
                                            DeploymentFilterId, DeploymentFilterTags, FlowRunFilter,
                                            FlowRunFilterParentFlowRunId, FlowRunFilterState,
                                            FlowRunFilterStateType)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort

# The tag of deployments nobody runs by hand (deploy-shard/<env>: a deploy
# starts them): no run yet is how they should be.
STARTED_BY_A_RUN = "started-by-a-run"

# Runs that have not started (a cron's next runs) are not a deployment's last run.
STARTED = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED])))


async def _last_run(client, deployment_id: UUID):
    runs = await client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=STARTED, sort=FlowRunSort.START_TIME_DESC, limit=1)
    return runs[0] if runs else None


async def last_runs(tag: str = "hotdeploy") -> list[dict]:
    """Each deployment tagged TAG (all of hotdeploy's) and its last run:
    name, run, state, message, ok (Completed)."""
    async with get_client() as client:
        deployments = await client.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[tag])))
        rows = []
        for d in deployments:
            flow = await client.read_flow(d.flow_id)
            run = await _last_run(client, d.id)
            rows.append(last_run_row(f"{flow.name}/{d.name}", run, STARTED_BY_A_RUN in (d.tags or [])))
    return sorted(rows, key=lambda r: r["deployment"])


def last_run_row(deployment: str, run, started_by_a_run: bool = False) -> dict:
    """One deployment's row: its last run's state and message, ok when it
    Completed (or, for a deployment only runs start, when it has none)."""
    state = run.state if run else None
    if state is None and started_by_a_run:
        return {"deployment": deployment, "run": None, "state": "-",
                "message": "started by a deploy run when a wave is sharded", "ok": True}
    return {"deployment": deployment, "run": run.name if run else None,
            "state": state.name if state else "no run yet", "message": (state.message or "") if state else "",
            "ok": bool(state and state.is_completed())}


def last_runs_table(rows: list[dict]) -> str:
    width = max([len(r["deployment"]) for r in rows] + [10])
    return "\n".join(f"{r['deployment']:<{width}}  {r['state']:<11} {r['message']}".rstrip() for r in rows)


async def run_report(run_id: UUID) -> tuple[str, bool]:
    """A run's one line and summaries, and whether it Completed."""
    return await _report(run_id, None)


async def _report(run_id: UUID | None, latest: str | None) -> tuple[str, bool]:
    async with get_client() as client:
        if latest:
            flow_name, _, deployment_name = latest.partition("/")
            deployment = await client.read_deployment_by_name(f"{flow_name}/{deployment_name}")
            run = await _last_run(client, deployment.id)
            if not run:
                return f"{latest}: no run yet", False
        else:
            run = await client.read_flow_run(run_id)
        children = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])))
        ids = [run.id] + [c.id for c in children]
        artifacts = await client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=ids)))
    state = run.state
    ok = bool(state and state.is_completed())
    out = [f"{run.name}: {state.name if state else 'no state'}: {(state.message if state else '') or ''}".rstrip(": ")]
    own = [a for a in artifacts if a.flow_run_id == run.id and a.type == "markdown"]
    for artifact in own or [a for a in artifacts if a.type == "markdown"]:
        out += ["", str(artifact.data).strip()]
    return "\n".join(out), ok


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m deployments.report", description=__doc__.splitlines()[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("flow_run_id", nargs="?", type=UUID, help="the run (`prefect deployment run` prints it)")
    which.add_argument("--latest", metavar="FLOW/DEPLOYMENT", help="the deployment's latest run, e.g. ship/staging")
    which.add_argument("--all", action="store_true", help="every hotdeploy deployment's last run")
    args = p.parse_args()
    if args.all:
        rows = asyncio.run(last_runs())
        print(last_runs_table(rows))
        return 0 if rows and all(r["ok"] for r in rows) else 1
    text, ok = asyncio.run(_report(args.flow_run_id, args.latest))
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
