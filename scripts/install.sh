#!/usr/bin/env bash
# Install what hotdeploy, its demo and its tests need on Debian 12 (as root):
# Debian packages, the Python venv (.venv, pinned by requirements.lock), a
# running Docker engine and the offline base image. Safe to re-run: each step
# is skipped when already done.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

packages=(docker.io erlang-nox rebar3 debootstrap nftables openssh-server openssh-client
          iproute2 procps curl git python3-venv python3-pip)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "apt: installing ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
stamp=.venv/.installed-$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "venv: installing pinned requirements into .venv"
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  # Pinned and without resolver work: a full resolve of prefect takes minutes.
  log=$(mktemp)
  { .venv/bin/pip install -q --no-deps -r requirements.lock && .venv/bin/pip install -q --no-deps -e .; } \
    >"$log" 2>&1 || { grep -v '^WARNING: Location' "$log" | tail -30 >&2; exit 1; }
  rm -f "$log"
  rm -f .venv/.installed-*; touch "$stamp"
fi

bash scripts/ensure-dockerd.sh
bash scripts/base-image.sh
