#!/usr/bin/env bash
# Checks, without changing a file, that the project's own code is formatted and passes its
# linters: prettier and eslint (TypeScript and JavaScript; eslint also holds the folder
# layering and the size limits), ruff check and ruff format (Python), clang-format (the C in
# sandbox/c/). Candidates and fixtures are data and are left out (see .prettierignore,
# eslint.config.js, ruff.toml). Installs what it needs first (scripts/setup.sh --lint).
# Runs every check, then exits 1 when any failed. scripts/format.sh fixes the formatting.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --lint || exit 1
venv=.venv-lint/bin
failed=()
check() {
  local name=$1
  shift
  echo "lint: $name" >&2
  "$@" || failed+=("$name")
}
check prettier node_modules/.bin/prettier --check --log-level warn .
check eslint node_modules/.bin/eslint --max-warnings 0 .
check 'ruff check' "$venv/ruff" check --quiet .
check 'ruff format' "$venv/ruff" format --check --quiet .
check clang-format "$venv/clang-format" --dry-run --Werror sandbox/c/*.c sandbox/c/*.h
if [ ${#failed[@]} -gt 0 ]; then
  echo "lint: failed: ${failed[*]}" >&2
  exit 1
fi
echo "lint: all passed" >&2
