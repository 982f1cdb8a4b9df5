#!/usr/bin/env bash
# Installs every Debian package chatd needs to build, run and test. Idempotent: packages already
# present are skipped, so a second run costs one dpkg query.
#   scripts/install-deps.sh          build + run (Node.js/npm build the web client)
#   scripts/install-deps.sh --test   also what the tests need (Chromium for the browser tests)
set -euo pipefail

build_pkgs=(build-essential cmake ninja-build ccache pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libsqlite3-dev libpq-dev libsodium-dev libhiredis-dev libmimalloc-dev libgtest-dev libgmock-dev clang-format nodejs npm)
test_pkgs=(curl chromium postgresql-15 redis-server nginx-light nats-server)

want=("${build_pkgs[@]}")
if [[ "${1:-}" == "--test" ]]; then want+=("${test_pkgs[@]}"); fi

missing=()
for p in "${want[@]}"; do
  # npm/nodejs may come from outside apt on a developer machine; a working command is enough.
  if [[ "$p" == nodejs ]] && command -v node >/dev/null 2>&1; then continue; fi
  if [[ "$p" == npm ]] && command -v npm >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "all packages present"
fi
