"""One hot_deploy in its own process, so its memory is its own:
python -m benchmarks.deploy_once ENVIRONMENT VERSION STORE_BLOCK [STRATEGY] -> JSON line
with the flow's wall time (flow start to flow end), its rows, and this
process's peak RSS (VmHWM, read here: wait4's ru_maxrss would include what
the process held before exec, i.e. the harness's memory)."""
import json
import sys
import time

from flows.deploy import hot_deploy

start = time.monotonic()
rows = hot_deploy(app="example_app", environment=sys.argv[1], version=sys.argv[2], store_block=sys.argv[3],
                  strategy=sys.argv[4] if len(sys.argv) > 4 else "auto")
seconds = time.monotonic() - start
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": round(seconds, 3), "rows": rows, "peak_rss_kb": hwm}))
