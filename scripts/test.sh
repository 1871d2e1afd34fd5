#!/usr/bin/env bash
# The test command (README): unit tests, then integration tests against the
# real Docker engine, moto's S3 API on 127.0.0.1 and a Prefect server.
#
# With no arguments the suite runs as four pytest sessions side by side (each
# with its own Prefect server, moto and test-host addresses): most of a test's
# time is waiting on nodes, soaks, heartbeats and leases (the suite keeps two
# cores about half busy), so sessions side by side take far less than one.
# Each prints its slowest tests, to keep the split even. The node program's
# tests run beside them, four at a time (pytest-xdist). With arguments, one
# session runs them (four at a time if they are all node program tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
pytest=(.venv/bin/python -m pytest -p no:cacheprovider -q)
# The node program's tests each wait on a node of their own (its own epmd
# per process, tests/node/conftest.py): four at a time take a third as long.
node_workers=(-n 4)
if [ $# -gt 0 ]; then
  only_node=1
  for arg in "$@"; do case $arg in -*|tests/node|tests/node/*) ;; *) only_node=0 ;; esac; done
  [ $only_node -eq 1 ] || node_workers=()
  exec "${pytest[@]}" "${node_workers[@]}" "$@"
fi

# Split by measured time (the --durations lines each session prints), about
# even. Addresses: session a 10-69 (its benchmark also uses 200-208), b
# 110-159, c 160-199, d 70-99 (its demo 100-104).
a=(tests/unit tests/integration/test_benchmarks.py
   tests/integration/test_bad_input.py tests/integration/test_release.py tests/integration/test_locking.py
   tests/integration/test_shards.py)
b=(tests/integration/test_elixir.py tests/integration/test_restart.py tests/integration/test_canary.py
   tests/integration/test_outages.py tests/integration/test_rehearsal.py
   tests/integration/test_setup.py tests/integration/test_new_apps.py)
c=(tests/integration/test_approval_suspend.py tests/integration/test_deploy.py tests/integration/test_deploy_refusals.py
   tests/integration/test_follow_fleet.py tests/integration/test_node_gate.py
   tests/integration/test_store_integrity.py tests/integration/test_workers.py tests/integration/test_warm_worker.py
   tests/integration/test_node_program.py)
d=(tests/integration/test_demo.py tests/integration/test_run_ends.py tests/integration/test_rollout.py)
missing=$(comm -23 <(ls tests/integration/test_*.py | sort) <(printf '%s\n' "${a[@]}" "${b[@]}" "${c[@]}" "${d[@]}" | sort))
if [ -n "$missing" ]; then echo "scripts/test.sh: not in a session: $missing" >&2; exit 2; fi

logs=$(mktemp -d)
HOTDEPLOY_TEST_HOSTS=10-69 "${pytest[@]}" --durations=12 "${a[@]}" > "$logs/a.log" 2>&1 & pa=$!
HOTDEPLOY_TEST_HOSTS=110-159 "${pytest[@]}" --durations=12 "${b[@]}" > "$logs/b.log" 2>&1 & pb=$!
HOTDEPLOY_TEST_HOSTS=160-199 "${pytest[@]}" --durations=12 "${c[@]}" > "$logs/c.log" 2>&1 & pc=$!
HOTDEPLOY_TEST_HOSTS=70-99 "${pytest[@]}" --durations=12 "${d[@]}" > "$logs/d.log" 2>&1 & pd=$!
"${pytest[@]}" "${node_workers[@]}" tests/node > "$logs/node.log" 2>&1 & pn=$!
ra=0; wait $pa || ra=$?
rb=0; wait $pb || rb=$?
rc=0; wait $pc || rc=$?
rd=0; wait $pd || rd=$?
rn=0; wait $pn || rn=$?
for s in a b c d; do echo "=== tests, session $s ==="; cat "$logs/$s.log"; done
echo "=== tests, the node program ==="; cat "$logs/node.log"
rm -rf "$logs"
echo "sessions: a exit $ra, b exit $rb, c exit $rc, d exit $rd, node program exit $rn"
[ $ra -eq 0 ] && [ $rb -eq 0 ] && [ $rc -eq 0 ] && [ $rd -eq 0 ] && [ $rn -eq 0 ]
