#!/usr/bin/env bash
# Formats the project's own code in place: prettier (TypeScript, JavaScript, JSON, YAML),
# ruff format (Python), clang-format (the C in sandbox/c/), with the same configuration and
# exclusions scripts/lint.sh checks. Candidates and fixtures are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --lint
# Twice: prettier settles some member chains only on a second pass.
node_modules/.bin/prettier --write --log-level warn .
node_modules/.bin/prettier --write --log-level warn .
.venv-lint/bin/ruff format --quiet .
.venv-lint/bin/clang-format -i sandbox/c/*.c sandbox/c/*.h
