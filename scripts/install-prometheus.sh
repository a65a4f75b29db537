#!/usr/bin/env bash
# Install the `prometheus` and `promtool` binaries from Debian's `prometheus` package.
#
# The tests start their own Prometheus (127.0.0.1, a free port, temporary storage) and
# run `promtool check rules` / `promtool test rules`; they only need the binaries, so the
# package's system service is never started. Idempotent: a fast no-op when both
# binaries are already on PATH. Prints the directory holding them on stdout.
set -euo pipefail

die() { echo "install-prometheus: ERROR: $*" >&2; exit 1; }
log() { echo "install-prometheus: $*" >&2; }

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  log "already installed: $(command -v prometheus)"
  dirname "$(command -v promtool)"
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found: install Prometheus (prometheus and promtool) by other means"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "must run as root (or have sudo) to apt-get install prometheus"
  SUDO=sudo
fi

# Keep the package's post-install script from starting the system service: the tests
# run their own server. policy-rc.d returning 101 is Debian's documented way to say
# "no service starts"; only add one (temporarily) when the machine has none.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=""
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  ADDED_POLICY=1
fi
cleanup() { if [ -n "$ADDED_POLICY" ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

log "apt-get update ..."
$SUDO apt-get update -qq >&2 || die "apt-get update failed"
log "apt-get install prometheus ..."
# No recommends: node-exporter and friends are not needed for the binaries.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  prometheus >&2 || die "apt-get install prometheus failed"

command -v prometheus >/dev/null && command -v promtool >/dev/null \
  || die "the prometheus package did not provide prometheus and promtool on PATH"
log "installed $(prometheus --version 2>&1 | head -n1)"
dirname "$(command -v promtool)"
