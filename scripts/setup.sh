#!/usr/bin/env bash
# Installs what Anvil needs on a fresh Debian machine with Node, npm and gcc, then
# builds it. Safe to run again; does nothing that is already done.
#
#   bash scripts/setup.sh          what serving and the demo need: bubblewrap, libseccomp and
#                                  binutils (through apt, when missing and when we are root),
#                                  the runtime npm packages and TypeScript, and the build
#   bash scripts/setup.sh --test   also what the test suite needs: the npm dev packages (tap,
#                                  playwright-core, hyparquet), Debian's python3-websockets and
#                                  python3-msgpack (the Python client's tests), torch 1.13 with
#                                  its headers, pybind11 and ninja (the torch backend on the
#                                  CPU), chromium (dashboard and report tests) and redis-server
#                                  (the distributed-queue tests); and a virtual environment,
#                                  .venv-trainers, with TRL, transformers, torch for the CPU,
#                                  datasets, Gymnasium and this checkout's Python client (the
#                                  trainer integrations' tests; pip's own index, 5 s timeout)
#   bash scripts/setup.sh --lint   what scripts/lint.sh needs: the npm dev packages (eslint,
#                                  prettier) and a virtual environment, .venv-lint, with the
#                                  pinned ruff and clang-format (scripts/lint-requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=demo
case "${1:-}" in
  '') ;;
  --test) mode=test ;;
  --lint) mode=lint ;;
  -h | --help)
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "setup: unknown option $1 (use --test, or nothing)" >&2
    exit 2
    ;;
esac

need=()
if [ "$mode" != lint ]; then
  command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
  [ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
  command -v nm >/dev/null 2>&1 || need+=(binutils)
fi
if [ "$mode" = test ]; then
  /usr/bin/python3 -c 'import websockets' 2>/dev/null || need+=(python3-websockets)
  /usr/bin/python3 -c 'import msgpack' 2>/dev/null || need+=(python3-msgpack)
  /usr/bin/python3 -c 'import torch' 2>/dev/null || need+=(python3-torch python3-numpy)
  [ -e /usr/include/torch/extension.h ] || need+=(libtorch-dev)
  [ -e /usr/include/pybind11/pybind11.h ] || need+=(pybind11-dev)
  command -v ninja >/dev/null 2>&1 || need+=(ninja-build)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
fi
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

# npm: the runtime packages and the build tools for the demo; everything for the tests
# and the lint. A marker says which set node_modules holds; the test set includes the demo's.
npmset=test
[ "$mode" = demo ] && npmset=demo
installed=none
[ -e node_modules/.anvil-demo ] && installed=demo
[ -e node_modules/.anvil-test ] && installed=test
if [ "$installed" != none ] && [ package-lock.json -nt "node_modules/.anvil-$installed" ]; then installed=none; fi
if [ "$installed" = none ] || { [ "$npmset" = test ] && [ "$installed" = demo ]; }; then
  echo "setup: installing npm packages ($npmset)" >&2
  if [ "$npmset" = test ]; then
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
  else
    npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null
  fi
  touch "node_modules/.anvil-$npmset"
  installed=$npmset
fi

# The formatters and linters for Python and C come from pip, pinned, in a venv of their own.
if [ "$mode" = lint ]; then
  venv=.venv-lint
  if [ ! -e "$venv/.anvil-ok" ] || [ scripts/lint-requirements.txt -nt "$venv/.anvil-ok" ]; then
    echo "setup: installing ruff and clang-format into $venv" >&2
    rm -f "$venv/.anvil-ok"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --disable-pip-version-check --timeout 5 --retries 0 -q -r scripts/lint-requirements.txt
    touch "$venv/.anvil-ok"
  fi
  exit 0
fi
# The demo's set has no test framework: it builds everything but the tests. Nothing is
# built again when no source changed since the last build of the same set.
project=tsconfig.app.json
if [ "$mode" = test ] || [ "$installed" = test ]; then project=tsconfig.json; fi
stamp="dist/.built-${project%.json}"
if [ ! -e "$stamp" ] || [ -n "$(find contracts env records rewards sandbox tasks clients scripts bench test tsconfig*.json package-lock.json -newer "$stamp" -name '*.ts' -o -newer "$stamp" -name '*.json' 2>/dev/null | head -1)" ]; then
  node node_modules/typescript/bin/tsc -p "$project"
  touch "$stamp"
fi

# The trainer integrations' tests run in a virtual environment of their own, never the demo's.
# When it cannot be made, setup says so and goes on; those tests then fail (never skip).
if [ "$mode" = test ]; then
  venv=.venv-trainers
  if [ ! -e "$venv/.anvil-ok" ] || [ clients/python/pyproject.toml -nt "$venv/.anvil-ok" ] || [ scripts/setup.sh -nt "$venv/.anvil-ok" ]; then
    echo "setup: installing the trainer packages into $venv (log: $venv-install.log)" >&2
    rm -f "$venv/.anvil-ok"
    if { python3 -m venv "$venv" &&
      "$venv/bin/pip" install --disable-pip-version-check --timeout 5 --retries 0 \
        'trl==1.13.*' transformers torch datasets 'gymnasium==1.3.*' pyarrow pydantic websockets msgpack ./clients/python; } >"$venv-install.log" 2>&1; then
      touch "$venv/.anvil-ok"
    else
      echo "setup: could not install the trainer packages (see $venv-install.log); their tests will fail" >&2
    fi
    rm -rf clients/python/build
  elif [ -n "$(find clients/python/anvil_client -name '*.py' -newer "$venv/.anvil-ok" | head -1)" ]; then
    # Only the client changed: install it again, nothing else.
    if "$venv/bin/pip" install --disable-pip-version-check --timeout 5 --retries 0 --no-deps ./clients/python >"$venv-install.log" 2>&1; then
      touch "$venv/.anvil-ok"
    else
      rm -f "$venv/.anvil-ok"
      echo "setup: could not install the Python client into $venv (see $venv-install.log); the trainer tests will fail" >&2
    fi
    rm -rf clients/python/build
  fi
fi
