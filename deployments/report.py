"""What a run did, for a CI log: its final state and message (one line: what
shipped, or why not) and the summary artifacts it made.

  prefect deployment run 'ship/staging' --param git_ref=$SHA --watch; rc=$?
  python -m deployments.report --latest ship/staging; exit $rc

Only the Prefect client: a CI job needs nothing else installed.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, DeploymentFilter,
                                            DeploymentFilterId, FlowRunFilter, FlowRunFilterParentFlowRunId)
from prefect.client.schemas.sorting import FlowRunSort


async def _report(run_id: UUID | None, latest: str | None) -> tuple[str, bool]:
    async with get_client() as client:
        if latest:
            flow_name, _, deployment_name = latest.partition("/")
            deployment = await client.read_deployment_by_name(f"{flow_name}/{deployment_name}")
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                sort=FlowRunSort.START_TIME_DESC, limit=1)
            if not runs:
                return f"{latest}: no run yet", False
            run = runs[0]
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
    args = p.parse_args()
    text, ok = asyncio.run(_report(args.flow_run_id, args.latest))
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
