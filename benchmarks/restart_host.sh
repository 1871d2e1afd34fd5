#!/usr/bin/env bash
# Baseline of a restart deploy for one host, from the deployer, with plain
# OpenSSH: copy the full tarball, stop the node, unpack the tarball over the
# release (its bin/<rel> and start_erl.data then boot the new version), start
# it (no checksum, no drain, no gate, no way back).
# Usage: restart_host.sh ADDRESS VSN TARBALL   (env: KEY, KNOWN_HOSTS, ROOT, REL)
set -euo pipefail
addr=$1 vsn=$2 tarball=$3
opts=(-i "$KEY" -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN_HOSTS" -o ConnectTimeout=10)
scp -q "${opts[@]}" "$tarball" "root@$addr:/tmp/$REL-$vsn.tar.gz"
ssh "${opts[@]}" "root@$addr" "$ROOT/bin/$REL stop >/dev/null; tar -xzf /tmp/$REL-$vsn.tar.gz -C $ROOT && \
  cd $ROOT && timeout 60 $ROOT/bin/$REL daemon </dev/null >/dev/null 2>&1"
