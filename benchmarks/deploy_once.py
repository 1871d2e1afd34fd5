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
import sys
import time

from benchmarks.flowtimes import cpu_s, peak_rss_kb, time_outside_hosts
from flows.deploy import hot_deploy

HOST_TASKS = ("upgrade-", "observe-", "commit-")


cpu0 = cpu_s()     # the flow's own CPU, not the interpreter's start and imports
start = time.monotonic()
state = hot_deploy(app="example_app", environment=sys.argv[1], version=sys.argv[2], store_block=sys.argv[3],
                   strategy=sys.argv[4] if len(sys.argv) > 4 else "auto", return_state=True)
seconds = time.monotonic() - start
cpu = cpu_s() - cpu0
rows = state.result()
print(json.dumps({"seconds": round(seconds, 3), "rows": rows, "peak_rss_kb": peak_rss_kb(),
                  "cpu_s": round(cpu, 3),
                  **asyncio.run(time_outside_hosts(state.state_details.flow_run_id, len(rows), HOST_TASKS))}))
