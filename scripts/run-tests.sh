#!/usr/bin/env bash
# Runs pytest inside the loopback-only namespace.  pytest's exit code 5 ("no tests were
# collected") is turned into a failure with a clear message: this suite always has tests,
# so collecting none means something is broken.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/in-netns.sh .venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "run-tests: pytest collected no tests; treating that as a failure" >&2
  exit 1
fi
exit $rc
