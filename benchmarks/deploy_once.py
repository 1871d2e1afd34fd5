"""One hot_deploy in its own process, so its peak memory is its own:
python -m benchmarks.deploy_once ENVIRONMENT VERSION STORE_BLOCK -> JSON line."""
import json
import sys
import time

from flows.deploy import hot_deploy

start = time.monotonic()
rows = hot_deploy(app="example_app", environment=sys.argv[1], version=sys.argv[2], store_block=sys.argv[3])
print(json.dumps({"seconds": round(time.monotonic() - start, 3), "rows": rows}))
