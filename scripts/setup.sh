#!/usr/bin/env bash
# Installs what Anvil needs on a fresh Debian machine with Node, npm and gcc:
# bubblewrap and libseccomp (through apt, when missing and when we are root),
# the npm packages, and the compiled TypeScript. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
command -v nm >/dev/null 2>&1 || need+=(binutils)
# The Python client's tests use Debian's interpreter and packages.
/usr/bin/python3 -c 'import websockets' 2>/dev/null || need+=(python3-websockets)
/usr/bin/python3 -c 'import msgpack' 2>/dev/null || need+=(python3-msgpack)
# The torch backend on the CPU (CI): torch 1.13 with its headers, pybind11 and ninja for C++ extensions.
/usr/bin/python3 -c 'import torch' 2>/dev/null || need+=(python3-torch python3-numpy)
[ -e /usr/include/torch/extension.h ] || need+=(libtorch-dev)
[ -e /usr/include/pybind11/pybind11.h ] || need+=(pybind11-dev)
command -v ninja >/dev/null 2>&1 || need+=(ninja-build)
# The dashboard and report tests drive Debian's Chromium through playwright-core.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The distributed-queue tests start their own redis-server on a loopback port.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: missing ${need[*]}; install them (apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
npx tsc -p .
