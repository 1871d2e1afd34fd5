#!/usr/bin/env bash
# Start Debian's dockerd if no engine answers. Builds need no iptables
# (the builder runs with --network none or host networking).
set -euo pipefail
DOCKER=/usr/bin/docker   # Debian's client matches Debian's daemon API
if "$DOCKER" version >/dev/null 2>&1; then exit 0; fi
mkdir -p /var/log/hotdeploy
nohup dockerd --iptables=false >/var/log/hotdeploy/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  "$DOCKER" version >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "dockerd did not answer within 30 s; see /var/log/hotdeploy/dockerd.log" >&2
exit 1
