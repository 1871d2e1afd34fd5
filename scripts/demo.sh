#!/usr/bin/env bash
# The demo (README): a real hot deploy through staging, rehearsal and production (local fleets of 2, 1, 2 hosts).
#   bash scripts/demo.sh          run it, then stop everything
#   bash scripts/demo.sh --keep   run it and leave the Prefect UI, fleet and worker up
#   bash scripts/demo.sh --elixir ship the Elixir example instead
#   bash scripts/demo.sh down     stop what --keep left running (--wipe: and its Prefect database)
#   Each demo starts with an empty Prefect database unless the last one was --keep.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "down" ]; then exec .venv/bin/python -m demo down "${@:2}"; fi
bash scripts/install.sh
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
exec .venv/bin/python -m demo run "$@"
