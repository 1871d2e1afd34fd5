#!/usr/bin/env bash
# The test command (README): unit tests, then integration tests against the
# real Docker engine, moto's S3 API on 127.0.0.1 and a Prefect server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
exec .venv/bin/python -m pytest -p no:cacheprovider -q "$@"
