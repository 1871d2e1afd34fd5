#!/usr/bin/env bash
# Start Debian's dockerd if no engine answers. Builds need no iptables
# (the builder runs with --network none or host networking). The daemon is
# detached (its own session) and keeps no descriptor of its caller: a
# caller's lock (flock) or pipe must not stay open for dockerd's lifetime.
set -euo pipefail
DOCKER=/usr/bin/docker   # Debian's client matches Debian's daemon API
if "$DOCKER" version >/dev/null 2>&1; then exit 0; fi
mkdir -p /var/log/hotdeploy
(
  for fd in $(ls /proc/$BASHPID/fd 2>/dev/null); do
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
  exec setsid dockerd --iptables=false </dev/null >>/var/log/hotdeploy/dockerd.log 2>&1
) &
for _ in $(seq 1 60); do
  "$DOCKER" version >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "dockerd did not answer within 30 s; see /var/log/hotdeploy/dockerd.log" >&2
exit 1
