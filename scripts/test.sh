#!/usr/bin/env bash
# The README's test command: install what the tests need, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
. scripts/python-env.sh
exec "$EKM_PYTHON" -m pytest -q -p no:cacheprovider "$@"
