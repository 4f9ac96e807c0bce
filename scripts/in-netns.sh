#!/usr/bin/env bash
# Runs a command inside a private network namespace that has only the loopback interface,
# so that nothing the tests start (Chromium, baresip, Kamailio, aioice) can send traffic
# anywhere but 127.0.0.1 / ::1.  Needs root (CI runs as root).  Set EXOTEL_NO_NETNS=1 to
# run without isolation (tests that need the namespace then skip themselves; our own
# loopback media tests run anyway: see docs/test-rig.md, "Which tests need the namespace").
#
#   scripts/in-netns.sh [--unprivileged] COMMAND [ARG...]
#
# --unprivileged: inside the namespace, run COMMAND as user nobody (setpriv: no groups, no
# capabilities, no new privileges), with HOME a fresh empty folder (the working tree is
# read-only to nobody, so hypothesis's example database goes there too).  If nobody cannot
# even read COMMAND's program (a Python under a private home such as pyenv's in /root),
# the one capability CAP_DAC_READ_SEARCH (read any file) is kept, and a line says so.
# When this script is not run as root, COMMAND runs as the current user, as it is.
set -euo pipefail
unprivileged=0
if [ "${1:-}" = "--unprivileged" ]; then
  unprivileged=1
  shift
fi

as_nobody() {
  local user=65534 program caps=-all home rc=0
  program=$(readlink -f "$(command -v "$1")")
  if ! setpriv --reuid=$user --regid=$user --clear-groups --inh-caps=-all test -r "$program" \
      -a -x "$program"; then
    caps=-all,+dac_read_search
    echo "in-netns: nobody cannot read $program; keeping CAP_DAC_READ_SEARCH only" >&2
  fi
  home=$(mktemp -d "${TMPDIR:-/tmp}/in-netns-home.XXXXXX")
  chown $user:$user "$home"
  HOME=$home HYPOTHESIS_STORAGE_DIRECTORY=$home/.hypothesis \
    setpriv --reuid=$user --regid=$user --clear-groups --no-new-privs \
      --inh-caps=$caps --ambient-caps=$caps --bounding-set=$caps -- "$@" || rc=$?
  rm -rf "$home"
  return $rc
}

if [ "${EXOTEL_NETNS:-}" = "1" ] || [ "${EXOTEL_NO_NETNS:-}" = "1" ]; then
  if [ $unprivileged -eq 1 ] && [ "$(id -u)" -eq 0 ]; then
    as_nobody "$@"
    exit
  fi
  exec "$@"
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "in-netns: not root; running without a private network namespace" >&2
  exec "$@"
fi
if [ $unprivileged -eq 1 ]; then
  set -- "$0" --unprivileged "$@"
fi
exec unshare --net -- bash -c 'ip link set lo up && export EXOTEL_NETNS=1 && exec "$@"' in-netns "$@"
