#!/usr/bin/env bash
# Run the test suite (offline, CPU). Extra arguments go to pytest.
source "$(dirname "$0")/_env.sh" test
cd "$ROOT"
exec python -m pytest -q "$@"
