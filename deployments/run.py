"""Run a deployment and wait for its end, for CI and the shell: one command
that starts the run, shows its logs as they come, and ends with the run's
one line (what shipped, or why not) and its summary; exit 0 only if the run
Completed.

  python -m deployments.run ship/staging -p git_ref=$SHA
  python -m deployments.run hot-deploy/production -p version=1.4.2 --timeout 1800

It is `prefect deployment run NAME --watch` then `python -m
deployments.report`, in one process: it reports the run it started (not the
deployment's latest, which another CI job may have started meanwhile), and
it ends once the run has ended and its last logs are in, without the fixed
3 s Prefect's watch waits for late logs.

Only the Prefect client: a CI job needs nothing else installed.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from uuid import UUID

from prefect.client.orchestration import get_client

from deployments.report import run_report

# After the run's end, how long to wait for its last logs: the engine sends
# them before its process exits, within a fraction of a second.
LATE_LOGS_S = 0.5
POLL_S = 5.0        # the state is read this often too, in case an event was missed


def parse_params(pairs: list[str], schema: dict | None = None) -> dict:
    """KEY=VALUE pairs. A VALUE is text where the flow's parameter schema
    says text (a git sha such as 1234e56 stays a sha); elsewhere it is read
    as JSON when it is JSON (numbers, booleans, lists), else as text."""
    properties = (schema or {}).get("properties", {})
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {pair!r}: expected KEY=VALUE")
        if _is_text(properties.get(key, {})):
            params[key] = value
            continue
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def _is_text(prop: dict) -> bool:
    kinds = {prop.get("type")} | {p.get("type") for p in prop.get("anyOf", [])}
    return "string" in kinds and not kinds & {"integer", "number", "boolean", "array", "object"}


def log_line(log) -> str:
    return f"{log.timestamp:%H:%M:%S} {logging.getLevelName(log.level):<7} {log.message}"


def ui_url() -> str | None:
    from prefect.settings import PREFECT_UI_URL
    return PREFECT_UI_URL.value()


def waiting_line(run_id: UUID, ui: str | None) -> str:
    """What a paused run (an approval) waits for, and where to give it."""
    where = f"{ui.rstrip('/')}/runs/flow-run/{run_id}" if ui else f"the Prefect UI, flow run {run_id}"
    return f"paused: the run waits for an approval (approve or take back): {where}"


async def start(name: str, pairs: list[str], flow_run_name: str | None):
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(name)
        params = parse_params(pairs, deployment.parameter_openapi_schema)
        return await client.create_flow_run_from_deployment(deployment.id, parameters=params, name=flow_run_name)


async def follow(run_id: UUID, show_logs: bool = True) -> None:
    """Print the run's logs until it has ended (Completed, Failed, Crashed,
    Cancelled) and its last logs are in."""
    from prefect.events.subscribers import FlowRunSubscriber
    from prefect.client.schemas.objects import Log

    async with FlowRunSubscriber(flow_run_id=run_id, straggler_timeout=LATE_LOGS_S) as stream:
        async def shown() -> None:
            async for item in stream:
                if show_logs and isinstance(item, Log):
                    print(log_line(item), flush=True)
                elif not isinstance(item, Log) and item.event in ("prefect.flow-run.Paused",
                                                                  "prefect.flow-run.Suspended"):
                    print(waiting_line(run_id, ui_url()), flush=True)

        async def ended() -> None:
            async with get_client() as client:
                while True:
                    run = await client.read_flow_run(run_id)
                    if run.state and run.state.is_final():
                        await asyncio.sleep(LATE_LOGS_S + POLL_S)   # the stream had its chance
                        return
                    await asyncio.sleep(POLL_S)
        tasks = [asyncio.create_task(shown()), asyncio.create_task(ended())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()       # a stream that failed for good says so
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def run(name: str, pairs: list[str], flow_run_name: str | None = None, timeout: float | None = None,
              show_logs: bool = True) -> tuple[str, int]:
    """Start NAME's run, follow it to its end, and return its report (the
    one line and summaries) and the exit code: 0 Completed, 1 ended
    otherwise, 2 not ended within TIMEOUT."""
    flow_run = await start(name, pairs, flow_run_name)
    print(f"{name}: run {flow_run.name} ({flow_run.id}) started", flush=True)
    try:
        await asyncio.wait_for(follow(flow_run.id, show_logs), timeout)
    except asyncio.TimeoutError:
        return (f"{name}: run {flow_run.name} had not ended after {timeout:g} s (it goes on; its report: "
                f"python -m deployments.report {flow_run.id})"), 2
    text, ok = await run_report(flow_run.id)
    return text, 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deployments.run", description=__doc__.splitlines()[0])
    p.add_argument("deployment", metavar="FLOW/DEPLOYMENT", help="e.g. ship/staging")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a flow parameter (repeat for more); the value is read as JSON when it is JSON")
    p.add_argument("--flow-run-name", help="the run's name (default: Prefect's)")
    p.add_argument("--timeout", type=float, help="give up waiting after this many seconds (exit 2; the run goes on)")
    p.add_argument("--quiet", action="store_true", help="no logs while it runs: only the report at the end")
    args = p.parse_args(argv)
    try:
        parse_params(args.param)
    except ValueError as exc:
        p.error(str(exc))
    text, code = asyncio.run(run(args.deployment, args.param, args.flow_run_name, args.timeout, not args.quiet))
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
