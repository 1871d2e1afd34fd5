#!/usr/bin/env bash
# Baseline: the seed's upgrade.sh for one host, from the deployer, with plain
# OpenSSH: copy the tarball where relx looks, `bin/<rel> upgrade VSN`
# (unpack + install + make permanent; no checksum, no gate, no rollback).
# Usage: upgrade_host.sh ADDRESS VSN TARBALL   (env: KEY, KNOWN_HOSTS, ROOT, REL)
set -euo pipefail
addr=$1 vsn=$2 tarball=$3
opts=(-i "$KEY" -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN_HOSTS" -o ConnectTimeout=10)
ssh "${opts[@]}" "root@$addr" "mkdir -p $ROOT/releases/$vsn"
scp -q "${opts[@]}" "$tarball" "root@$addr:$ROOT/releases/$vsn/$REL.tar.gz"
ssh "${opts[@]}" "root@$addr" "$ROOT/bin/$REL ${ACTION:-upgrade} $vsn" >/dev/null
