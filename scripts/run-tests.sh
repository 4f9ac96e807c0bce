#!/usr/bin/env bash
# Runs pytest inside the loopback-only namespace.  pytest's exit code 5 ("no tests were
# collected") is turned into a failure with a clear message: this suite always has tests,
# so collecting none means something is broken.
#
# Without arguments (what `make test` does) the media tests then run again with aiortc's
# own path forced (EXOTEL_VOICE_AIORTC_COMPAT=off, see
# src/exotel_voice/media/_aiortc_compat.py), so the fallback for a changed aiortc keeps
# working too.  That pass runs as an unprivileged user (nobody, no capabilities: see
# scripts/in-netns.sh --unprivileged), still inside the namespace: it shows that real media
# on 127.0.0.1 needs no root (docs/test-rig.md, "Which tests need the namespace").
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/in-netns.sh .venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "run-tests: pytest collected no tests; treating that as a failure" >&2
  exit 1
fi
if [ $rc -eq 0 ] && [ $# -eq 0 ]; then
  echo "run-tests: the media tests again, on aiortc's own path (EXOTEL_VOICE_AIORTC_COMPAT=off)," \
    "as user nobody"
  EXOTEL_VOICE_AIORTC_COMPAT=off PYTHONDONTWRITEBYTECODE=1 scripts/in-netns.sh --unprivileged \
    .venv/bin/python -m pytest -q -p no:cacheprovider -m "media and not interop" tests/media
  rc=$?
  [ $rc -eq 5 ] && rc=1
fi
exit $rc
