"""What the benchmark's flow processes measure of themselves, the same way
for every flow (benchmarks/deploy_once.py, benchmarks/floor_once.py): the
run's fixed cost as the Prefect server recorded it, this process's CPU time
and peak RSS."""
import asyncio
import resource
import time


async def time_outside_hosts(flow_run_id, hosts_expected: int, host_tasks: tuple[str, ...],
                             wait_s: float = 60) -> dict:
    """The flow's time outside its host tasks (task runs named with one of
    HOST_TASKS' prefixes): flow start to the first host task's start (head)
    and the last host task's end to the flow's end (tail). The server
    records task runs from their events, after the flow has returned: read
    until HOSTS_EXPECTED host tasks have ended (read at once, a 128-host run
    showed a 9 s tail that was 0.9 s)."""
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
            hosts = [t for t in tasks if t.name.startswith(host_tasks) and t.start_time and t.end_time]
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


def peak_rss_kb() -> int:
    """This process's peak RSS (VmHWM, read here: wait4's ru_maxrss would
    include what the process held before exec, i.e. the harness's memory)."""
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
