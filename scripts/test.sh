#!/usr/bin/env bash
# The test command (README): unit tests, then integration tests against the
# real Docker engine, moto's S3 API on 127.0.0.1 and a Prefect server.
#
# With no arguments the suite runs as two pytest sessions side by side (each
# with its own Prefect server, moto and test-host addresses): most of a test's
# time is waiting on nodes, soaks and leases, so two sessions on two cores take
# little more than half the time of one. With arguments, one session runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
pytest=(.venv/bin/python -m pytest -p no:cacheprovider -q)
if [ $# -gt 0 ]; then
  exec "${pytest[@]}" "$@"
fi

# Split by measured time (pytest --durations), about even.
a=(tests/unit tests/node tests/integration/test_benchmarks.py tests/integration/test_demo.py
   tests/integration/test_locking.py tests/integration/test_rollout.py tests/integration/test_outages.py
   tests/integration/test_bad_input.py tests/integration/test_release.py tests/integration/test_elixir.py
   tests/integration/test_restart.py)
b=(tests/integration/test_deploy.py tests/integration/test_deploy_refusals.py
   tests/integration/test_follow_fleet.py tests/integration/test_node_gate.py
   tests/integration/test_rehearsal.py tests/integration/test_store_integrity.py
   tests/integration/test_run_ends.py tests/integration/test_setup.py tests/integration/test_workers.py
   tests/integration/test_node_program.py tests/integration/test_canary.py)
missing=$(comm -23 <(ls tests/integration/test_*.py | sort) <(printf '%s\n' "${a[@]}" "${b[@]}" | sort))
if [ -n "$missing" ]; then echo "scripts/test.sh: not in a shard: $missing" >&2; exit 2; fi

logs=$(mktemp -d)
HOTDEPLOY_TEST_HOSTS=10-99 "${pytest[@]}" "${a[@]}" > "$logs/a.log" 2>&1 & pa=$!
HOTDEPLOY_TEST_HOSTS=110-199 "${pytest[@]}" "${b[@]}" > "$logs/b.log" 2>&1 & pb=$!
ra=0; wait $pa || ra=$?
rb=0; wait $pb || rb=$?
for s in a b; do echo "=== tests, session $s ==="; cat "$logs/$s.log"; done
rm -rf "$logs"
echo "sessions: a exit $ra, b exit $rb"
[ $ra -eq 0 ] && [ $rb -eq 0 ]
