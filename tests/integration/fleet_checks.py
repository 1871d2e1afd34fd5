"""What the tests read off the fleet, independently of the code under test:
HTTP from the deployer's side, OS pids from /proc of the host's namespace."""
from __future__ import annotations

import http.client
from pathlib import Path


def get(address: str, path: str) -> str:
    conn = http.client.HTTPConnection(address, 8080, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode().strip()
    finally:
        conn.close()


def version(host) -> str:
    return get(host.address, "/api/public/version")


def state(host) -> tuple[int, str]:
    """(hits, shape) from the gen_server, e.g. (42, 'tuple')."""
    text = get(host.address, "/api/public/state")
    fields = dict(part.split("=") for part in text.split())
    return int(fields["hits"]), fields["shape"]


def is_beam(pid: int) -> bool:
    """Whether PID is a live BEAM emulator (read from /proc)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().startswith("beam") and \
            "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def beam_pid(host) -> int:
    """The OS pid of the node's emulator, read from /proc (not from our code)."""
    pids = [p for p in host.pids() if is_beam(p)]
    assert len(pids) == 1, f"{host.name}: expected one beam process, found {pids}"
    return pids[0]


def releases_on(host) -> list[str]:
    root = host.dir / "srv" / "example_app" / "releases"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def run_logs(flow_run_id, until=None, seconds: float = 30) -> list[str]:
    """Every log line of a flow run and its task runs, read from the Prefect
    API. UNTIL(line): read again until a line satisfies it (logs reach the
    server in batches, after the run's state) or SECONDS pass."""
    import time
    deadline = time.monotonic() + seconds
    while True:
        lines = _run_logs(flow_run_id)
        if until is None or any(until(line) for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.5)


def _run_logs(flow_run_id) -> list[str]:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async def read() -> list[str]:
        async with get_client() as client:
            lines, offset = [], 0
            while True:
                page = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                              limit=200, offset=offset)
                lines += [log.message for log in page]
                if len(page) < 200:
                    return lines
                offset += 200
    return asyncio.run(read())


def task_runs(flow_run_id, until=None, seconds: float = 30) -> list[str]:
    """The names of a flow run's task runs ("read_deploy_inputs-a1b", "status-<host>"),
    in order of start, read from the Prefect API. UNTIL(names): read again until
    it holds (task runs are recorded from events, after the run's state) or
    SECONDS pass."""
    import asyncio
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    async def read() -> list[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                               sort=TaskRunSort.EXPECTED_START_TIME_ASC)
            return [r.name for r in runs]
    deadline = time.monotonic() + seconds
    while True:
        names = asyncio.run(read())
        if until is None or until(names) or time.monotonic() > deadline:
            return names
        time.sleep(0.5)


def restart(host, root: str, app: str, crash: bool = False) -> str:
    """The node stopped by its start script (CRASH: killed by its own pid, as a
    crash or a power cut would; the hosts share the machine's process table,
    so never by a pattern) and started by it again, as a service manager
    would; the version it then answers."""
    import time
    stop = f"kill -9 {beam_pid(host)}; sleep 0.5" if crash else f"{root}/bin/{app} stop >/dev/null 2>&1"
    host.run(f"{stop}; cd {root} && timeout 60 {root}/bin/{app} daemon </dev/null >/dev/null 2>&1")
    deadline = time.monotonic() + 30
    while True:
        try:
            return version(host)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def events(name: str, resource_id: str, seconds: float = 30) -> list[dict]:
    """The events NAME about RESOURCE_ID the Prefect server stored in the
    last hour, as its API gives them; read again for up to SECONDS (a run's
    events reach the server a moment after its state)."""
    import time
    from datetime import datetime, timedelta, timezone

    from prefect.client.orchestration import get_client
    body = {"filter": {"occurred": {"since": (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()},
                       "event": {"name": [name]}, "resource": {"id": [resource_id]}}, "limit": 50}
    deadline = time.monotonic() + seconds
    while True:
        with get_client(sync_client=True) as client:
            found = client.request("POST", "/events/filter", json=body).json()["events"]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def documented_automation(doc: str, marker: str) -> dict:
    """The JSON of the `prefect automation create --from-json` example in DOC
    (a path under the repository) whose text contains MARKER."""
    import json
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / doc).read_text()
    for example in re.findall(r"prefect automation create --from-json '(.*?)'", text, re.S):
        if marker in example:
            return json.loads(example)
    raise AssertionError(f"no automation example with {marker} in {doc}")
