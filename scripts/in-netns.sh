#!/usr/bin/env bash
# Runs a command inside a private network namespace that has only the loopback interface,
# so that nothing the tests start (Chromium, baresip, aioice, Kamailio) can send traffic
# anywhere but 127.0.0.1 / ::1.  Needs root (CI runs as root).  Set EXOTEL_NO_NETNS=1 to
# run without isolation (media and interop tests then skip themselves).
set -euo pipefail
if [ "${EXOTEL_NETNS:-}" = "1" ] || [ "${EXOTEL_NO_NETNS:-}" = "1" ]; then
  exec "$@"
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "in-netns: not root; running without a private network namespace" >&2
  exec "$@"
fi
exec unshare --net -- bash -c 'ip link set lo up && export EXOTEL_NETNS=1 && exec "$@"' in-netns "$@"
