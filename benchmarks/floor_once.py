"""Prefect's own floor for a fleet flow, in its own process, measured as
benchmarks/deploy_once.py measures hot_deploy:
python -m benchmarks.floor_once HOSTS SECONDS -> JSON line.
A flow of HOSTS task runs at once (a thread pool as wide), each logging one
line and sleeping SECONDS, nothing else: what any flow that gives each host
a task run of its own costs the Prefect server and the deployer, and its
time outside the host tasks (fixed cost), with no store, EC2, lock or SSH."""
import asyncio
import json
import sys
import time

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from benchmarks.flowtimes import cpu_s, peak_rss_kb, time_outside_hosts


@task(task_run_name="host-{i}", cache_policy=NO_CACHE)
def host_task(i: int, seconds: float) -> dict:
    time.sleep(seconds)
    get_run_logger().info("host %d: done", i)
    return {"host": i, "result": "upgraded"}


@flow(name="prefect-floor")
def prefect_floor(hosts: int, seconds: float) -> list[dict]:
    with ThreadPoolTaskRunner(max_workers=hosts) as runner:
        futures = runner.map(host_task, {"i": list(range(hosts)), "seconds": [seconds] * hosts})
        return [f.result() for f in futures]


if __name__ == "__main__":
    hosts, seconds = int(sys.argv[1]), float(sys.argv[2])
    cpu0 = cpu_s()
    start = time.monotonic()
    state = prefect_floor(hosts, seconds, return_state=True)
    elapsed = time.monotonic() - start
    cpu = cpu_s() - cpu0
    rows = state.result()
    print(json.dumps({"seconds": round(elapsed, 3), "rows": len(rows), "peak_rss_kb": peak_rss_kb(),
                      "cpu_s": round(cpu, 3),
                      **asyncio.run(time_outside_hosts(state.state_details.flow_run_id, hosts, ("host-",)))}))
