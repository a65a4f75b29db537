#!/usr/bin/env bash
# Build the operator image and the example trial image without any image registry.
#
#   bash scripts/build-images.sh            # build what changed (cached)
#   bash scripts/build-images.sh --force    # rebuild both images (the base stays cached)
#
# The base image is Debian bookworm made by `mmdebstrap` from Debian's packages (python3,
# python3-venv, python-is-python3, ca-certificates); `buildah bud --isolation chroot` then
# builds images/operator/Dockerfile and images/trial-sklearn/Dockerfile on it
# (--build-arg PYTHON_IMAGE=<that base>; the Dockerfiles' published default stays
# python:3.12-slim-bookworm). pip inside the build downloads from PyPI.
#
# Output: ${KUBESWEEP_CACHE:-~/.cache/kubesweep}/images/<name>.tar, docker-archive tars
# tagged with the names the chart's default values and the examples use (what `ctr
# images import` and `docker load` read), so nothing is ever pulled. Each tar has a
# <name>.stamp: a hash of everything the image is built from (Dockerfile, the files it
# copies, the base, this script). A warm run compares stamps and builds nothing.
# buildah's storage (layers, the base) lives in ~/.cache/kubesweep/buildah, never in
# /var/lib/containers. Needs root, buildah and mmdebstrap (scripts/install-node-deps.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${KUBESWEEP_CACHE:-$HOME/.cache/kubesweep}
OUT="$CACHE/images"
DRIVER=${KUBESWEEP_BUILDAH_DRIVER:-overlay}
STORE="$CACHE/buildah/$DRIVER"
DEBIAN_MIRROR=${KUBESWEEP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY=${KUBESWEEP_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
BASE_TAG=localhost/kubesweep/python-base:$SUITE
# The build trusts what this machine trusts: behind a TLS-intercepting proxy pip in the
# build needs the proxy's CA, which only the host's bundle has. Mounted, never copied in.
CA_BUNDLE=${KUBESWEEP_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

die() { echo "build-images: ERROR: $*" >&2; exit 1; }
log() { echo "build-images: $*" >&2; }

FORCE=""
case "${1:-}" in
  "") ;;
  --force) FORCE=1 ;;
  *) die "unknown argument '$1' (valid: --force)" ;;
esac

# --- image names: exactly what users' manifests reference -------------------------------
APP_VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' \
  "$ROOT/charts/kubesweep/Chart.yaml")
[ -n "$APP_VERSION" ] || die "no appVersion in charts/kubesweep/Chart.yaml"
OPERATOR_REPO=$(sed -n '/^image:/,/^[^ ]/s/^  repository: *\([^ ]*\) *$/\1/p' \
  "$ROOT/charts/kubesweep/values.yaml")
[ -n "$OPERATOR_REPO" ] || die "no image.repository in charts/kubesweep/values.yaml"
mapfile -t TRIAL_REFS < <(grep -ho 'image: *[^ ]*trial-sklearn[^ ]*' "$ROOT"/examples/*.yaml \
  | sed 's/image: *//' | sort -u)
[ "${#TRIAL_REFS[@]}" = 1 ] \
  || die "examples/*.yaml must all use one trial-sklearn image, found: ${TRIAL_REFS[*]:-none}"

# name | Dockerfile | tag | files the Dockerfile copies (its build inputs)
IMAGES=(
  "operator|images/operator/Dockerfile|$OPERATOR_REPO:$APP_VERSION|pyproject.toml README.md operator"
  "trial-sklearn|images/trial-sklearn/Dockerfile|${TRIAL_REFS[0]}|pyproject.toml README.md operator examples/train_digits_mlp.py"
)

# --- stamps -------------------------------------------------------------------------------
SCRIPT_HASH=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
BASE_STAMP=$(printf '%s\n' "$SCRIPT_HASH" "$SUITE" "$BASE_PACKAGES" "$DEBIAN_MIRROR" \
  "$DEBIAN_SECURITY" | sha256sum | cut -d' ' -f1)

# Hash of the files (paths and contents) an image is built from; bytecode and build
# leftovers are excluded as .dockerignore excludes them from the context.
inputs_hash() {
  local dockerfile=$1; shift
  (cd "$ROOT" && {
    echo "$BASE_STAMP"
    cat .dockerignore "$dockerfile"
    find "$@" -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum
  }) | sha256sum | cut -d' ' -f1
}

declare -A WANT_STAMP
stale=()
for spec in "${IMAGES[@]}"; do
  IFS='|' read -r name dockerfile tag inputs <<<"$spec"
  # shellcheck disable=SC2086  # inputs is a list of paths
  WANT_STAMP[$name]=$(inputs_hash "$dockerfile" $inputs)
  if [ -z "$FORCE" ] && [ -s "$OUT/$name.tar" ] \
     && [ "$(cat "$OUT/$name.stamp" 2>/dev/null)" = "${WANT_STAMP[$name]}" ]; then
    log "up to date: $OUT/$name.tar ($tag)"
  else
    stale+=("$spec")
  fi
done
[ "${#stale[@]}" -gt 0 ] || exit 0

# --- tools ----------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "must run as root (buildah --isolation chroot, mmdebstrap)"
for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || die "$tool not found: run scripts/install-node-deps.sh"
done
mkdir -p "$OUT" "$STORE"
BUILDAH=(buildah --root "$STORE/storage" --runroot "$STORE/run" --storage-driver "$DRIVER")
export BUILDAH_ISOLATION=chroot
start=$SECONDS

# --- base: Debian bookworm with Python, from Debian's packages ---------------------------
base_ok() {
  [ "$(cat "$STORE/base.stamp" 2>/dev/null)" = "$BASE_STAMP" ] \
    && "${BUILDAH[@]}" inspect --type image "$BASE_TAG" >/dev/null 2>&1
}
if ! base_ok; then
  log "mmdebstrap: Debian $SUITE + $BASE_PACKAGES ..."
  TMPD=$(mktemp -d "$CACHE/base.XXXXXX")
  trap 'rm -rf "$TMPD"' EXIT
  # Documentation, man pages and translations are of no use in a container.
  nice -n 10 mmdebstrap --variant=minbase --include="$BASE_PACKAGES" \
      --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      "$SUITE" "$TMPD/rootfs.tar" \
      "deb $DEBIAN_MIRROR $SUITE main" "deb $DEBIAN_MIRROR $SUITE-updates main" \
      "deb $DEBIAN_SECURITY $SUITE-security main" >&2 \
    || die "mmdebstrap failed (is $DEBIAN_MIRROR reachable?)"
  log "base rootfs built after $((SECONDS - start))s; making it an image ..."
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" add "$ctr" "$TMPD/rootfs.tar" / >/dev/null
  "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 \
    --label "io.kubesweep.base=debian-$SUITE $BASE_PACKAGES" "$ctr"
  "${BUILDAH[@]}" commit --rm --quiet "$ctr" "$BASE_TAG" >/dev/null
  # Layers built on an older base must not be reused.
  "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
  echo "$BASE_STAMP" > "$STORE/base.stamp"
  rm -rf "$TMPD"; trap - EXIT
  log "base image $BASE_TAG ready after $((SECONDS - start))s"
fi

# --- the images ----------------------------------------------------------------------------
VOLUMES=()
if [ -s "$CA_BUNDLE" ]; then
  VOLUMES=(--volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
fi
for spec in "${stale[@]}"; do
  IFS='|' read -r name dockerfile tag _ <<<"$spec"
  t0=$SECONDS
  log "building $tag from $dockerfile ..."
  # --layers: an edit to the operator's code reuses the layers before its COPY.
  (cd "$ROOT" && nice -n 10 "${BUILDAH[@]}" bud --isolation chroot --layers --pull=never \
      --build-arg "PYTHON_IMAGE=$BASE_TAG" "${VOLUMES[@]}" \
      -f "$dockerfile" -t "$tag" .) >&2 \
    || die "buildah bud of $dockerfile failed (output above)"
  rm -f "$OUT/$name.tar.tmp" "$OUT/$name.stamp"
  # docker-archive keeps the repository:tag in manifest.json; containerd imports it so.
  "${BUILDAH[@]}" push --quiet "$tag" "docker-archive:$OUT/$name.tar.tmp:$tag" >&2 \
    || die "could not write $OUT/$name.tar"
  mv "$OUT/$name.tar.tmp" "$OUT/$name.tar"
  echo "${WANT_STAMP[$name]}" > "$OUT/$name.stamp"
  log "$tag -> $OUT/$name.tar ($(du -m "$OUT/$name.tar" | cut -f1) MB) in $((SECONDS - t0))s"
done
log "done in $((SECONDS - start))s"
