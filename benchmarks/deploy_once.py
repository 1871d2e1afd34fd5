"""One hot_deploy in its own process, so its memory is its own:
python -m benchmarks.deploy_once ENVIRONMENT VERSION STORE_BLOCK [STRATEGY] -> JSON line
with the flow's wall time (flow start to flow end), its rows, this
process's peak RSS (VmHWM, read here: wait4's ru_maxrss would include what
the process held before exec, i.e. the harness's memory) and CPU time, and
the run's fixed cost as the Prefect server recorded it: from the flow's
start to its first host task's start, plus from its last host task's end
(upgrade, observe or commit) to the flow's end."""
import asyncio
import json
import resource
import sys
import time

from flows.deploy import hot_deploy

HOST_TASKS = ("upgrade-", "observe-", "commit-")


async def time_outside_hosts(flow_run_id, hosts_expected: int, wait_s: float = 60) -> dict:
    """The flow's time outside its host tasks: flow start to the first host
    task's start (head) and the last host task's end to the flow's end
    (tail). The server records task runs from their events, after the flow
    has returned: read until HOSTS_EXPECTED host tasks have ended (read at
    once, a 128-host run showed a 9 s tail that was 0.9 s)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    deadline = time.monotonic() + wait_s
    async with get_client() as client:
        while True:
            run = await client.read_flow_run(flow_run_id)
            tasks, page = [], None
            while page is None or len(page) == 200:      # the server gives 200 at most at a time
                page = await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200,
                    offset=len(tasks))
                tasks += page
            hosts = [t for t in tasks if t.name.startswith(HOST_TASKS) and t.start_time and t.end_time]
            if (len(hosts) >= hosts_expected and run.end_time) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    if len(hosts) < hosts_expected or not run.start_time or not run.end_time:
        return {"fixed_cost_s": None}
    head = (min(t.start_time for t in hosts) - run.start_time).total_seconds()
    tail = (run.end_time - max(t.end_time for t in hosts)).total_seconds()
    return {"fixed_cost_s": round(head + tail, 3), "head_s": round(head, 3), "tail_s": round(tail, 3)}


def cpu_s() -> float:
    """This process's CPU time and its reaped children's (ssh-keyscan, ...)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


cpu0 = cpu_s()     # the flow's own CPU, not the interpreter's start and imports
start = time.monotonic()
state = hot_deploy(app="example_app", environment=sys.argv[1], version=sys.argv[2], store_block=sys.argv[3],
                   strategy=sys.argv[4] if len(sys.argv) > 4 else "auto", return_state=True)
seconds = time.monotonic() - start
cpu = cpu_s() - cpu0
rows = state.result()
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": round(seconds, 3), "rows": rows, "peak_rss_kb": hwm,
                  "cpu_s": round(cpu, 3),
                  **asyncio.run(time_outside_hosts(state.state_details.flow_run_id, len(rows)))}))
