#!/usr/bin/env bash
# Installs the Debian 12 packages the test rig and the demo need. Idempotent: does nothing
# when every package is already installed. Needs root (CI runs as root).
set -euo pipefail
PKGS=(
  python3-venv openssl sox iproute2 util-linux procps
  kamailio kamailio-websocket-modules kamailio-tls-modules
  rtpengine-daemon
  chromium
  baresip-core
  coturn redis-server
  espeak-ng
  pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-apt: missing packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages enable their daemons; the test suite starts its own copies on loopback.
for svc in kamailio rtpengine-daemon coturn redis-server; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || true
  service "$svc" stop >/dev/null 2>&1 || true
done
