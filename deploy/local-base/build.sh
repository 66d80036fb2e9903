#!/bin/sh
# Builds knnserve-base:bookworm-local, a stand-in for python:3.11.14-slim-bookworm made from Debian's
# own packages (mmdebstrap), for machines that reach Debian and PyPI but no image registry. It plays
# the base's role in deploy/Dockerfile (--build-arg PYTHON_IMAGE=knnserve-base:bookworm-local): a
# `python` and a `pip` that installs into the system Python. docs/deploy.md lists how it differs.
#
# Skipped when an image of that name carries the hash of this file and of the CA bundle it copies in
# (label knnserve.inputs). Needs root (mmdebstrap's root mode) and a running docker daemon.
set -eu

TAG=${KNNSERVE_BASE_IMAGE:-knnserve-base:bookworm-local}
# The build reaches PyPI through the CAs this host trusts (an intercepting proxy's, here): the
# image trusts the same bundle, and pip is told to use it (pip otherwise reads certifi's own).
CA_BUNDLE=${KNNSERVE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
MIRROR=${KNNSERVE_DEBIAN_MIRROR:-http://deb.debian.org}

inputs=$( { cat "$0" "$CA_BUNDLE"; echo "$MIRROR"; } | sha256sum | cut -c1-16)
if [ "$(docker image inspect --format '{{ index .Config.Labels "knnserve.inputs" }}' "$TAG" 2>/dev/null)" = "$inputs" ]; then
    echo "$TAG is current (inputs $inputs)"
    exit 0
fi
command -v mmdebstrap >/dev/null || { echo "error: mmdebstrap is not installed (apt-get install mmdebstrap)" >&2; exit 1; }

echo "building $TAG from Debian bookworm packages (mmdebstrap)"
start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# merged-usr: /usr merged as in Debian's own images, without the usrmerge package (and the perl
# it pulls in: 47 MB). python3 is 3.11 on bookworm; python3-venv gives `python -m build` its
# isolated environments; python-is-python3 the `python` command the Dockerfile's HEALTHCHECK runs.
# Recommends are not installed; documentation, manual pages and translations are left out (as in
# Debian's slim images). dpkg skips fsync while the tree is built (a setup hook, removed after).
# EXTERNALLY-MANAGED is removed: the public image's Python is not Debian's, and the Dockerfile
# installs into it with pip as root (to /usr/local here, as there).
if ! mmdebstrap --variant=minbase \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --setup-hook='mkdir -p "$1/etc/dpkg/dpkg.cfg.d" && echo force-unsafe-io > "$1/etc/dpkg/dpkg.cfg.d/knnserve-unsafe-io"' \
    --customize-hook='rm "$1/etc/dpkg/dpkg.cfg.d/knnserve-unsafe-io"' \
    --customize-hook="cp '$CA_BUNDLE' \"\$1/etc/ssl/certs/ca-certificates.crt\"" \
    --customize-hook='printf "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n" > "$1/etc/pip.conf"' \
    --customize-hook='rm -f "$1"/usr/lib/python3.*/EXTERNALLY-MANAGED' \
    --customize-hook='find "$1/usr/lib/python3" "$1"/usr/lib/python3.* -name __pycache__ -prune -exec rm -rf {} +' \
    bookworm "$work/base.tar" \
    "deb $MIRROR/debian bookworm main" \
    "deb $MIRROR/debian bookworm-updates main" \
    "deb $MIRROR/debian-security bookworm-security main" >"$work/mmdebstrap.log" 2>&1; then
    echo "error: mmdebstrap failed; the end of its log:" >&2
    tail -n 40 "$work/mmdebstrap.log" >&2
    exit 1
fi
docker import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --change "LABEL knnserve.inputs=$inputs" \
    --message "knnserve stand-in base: Debian bookworm minbase + python3 (deploy/local-base/build.sh)" \
    "$work/base.tar" "$TAG" >/dev/null
echo "built $TAG in $(( $(date +%s) - start )) s: $(docker image inspect --format '{{ .Size }}' "$TAG" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
