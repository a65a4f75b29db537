#!/usr/bin/env bash
# Install Debian's `chromium` (headless browser for the HTML report's tests and the
# README screenshot). Idempotent: a fast no-op when chromium is already on PATH.
set -euo pipefail

die() { echo "install-chromium: ERROR: $*" >&2; exit 1; }
log() { echo "install-chromium: $*" >&2; }

if command -v chromium >/dev/null; then
  log "already installed: $(command -v chromium)"
  exit 0
fi
command -v apt-get >/dev/null || die "apt-get not found: install Chromium by other means"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "must run as root (or have sudo) to apt-get install chromium"
  SUDO=sudo
fi
log "apt-get update ..."
$SUDO apt-get update -qq >&2 || die "apt-get update failed"
log "apt-get install chromium ..."
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  chromium >&2 || die "apt-get install chromium failed"
command -v chromium >/dev/null || die "the chromium package did not put chromium on PATH"
log "installed $(chromium --version 2>/dev/null | head -n1)"
