#!/usr/bin/env bash
# The benchmarks (README): bash scripts/bench.sh [--sizes 1,4,16,32] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -c "import matplotlib" 2>/dev/null || .venv/bin/pip install -q matplotlib 2>/dev/null
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
exec .venv/bin/python -m benchmarks.run "$@"
