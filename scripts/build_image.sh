#!/bin/sh
# Builds the server image (default knnserve:dev) from deploy/Dockerfile, as a user does: the same
# file, stages and lock. The base is the public python:3.11.14-slim-bookworm when it is present or
# can be pulled; where no registry answers, deploy/local-base/build.sh builds a stand-in from Debian
# packages and it goes in through the Dockerfile's PYTHON_IMAGE argument. KNNSERVE_PYTHON_IMAGE
# names a base outright. Docker's layer cache skips every step whose inputs did not change.
#
#     scripts/build_image.sh [--optional]
#
# --optional: without a docker daemon, say so and exit 0 (`make test`: the image tests then skip,
# or fail under KNNSERVE_REQUIRE_TOOLS=1) instead of failing.
set -eu
cd "$(dirname "$0")/.."

TAG=${KNNSERVE_IMAGE:-knnserve:dev}
PUBLIC_BASE=python:3.11.14-slim-bookworm
LOCAL_BASE=${KNNSERVE_BASE_IMAGE:-knnserve-base:bookworm-local}
LOG=${TMPDIR:-/tmp}/knnserve-image-build.log

if ! docker info >/dev/null 2>&1; then
    if [ "${1:-}" = "--optional" ]; then
        echo "note: no docker daemon: $TAG not built"
        exit 0
    fi
    echo "error: no docker daemon answers (scripts/with_dockerd.sh starts one as root)" >&2
    exit 1
fi

base=${KNNSERVE_PYTHON_IMAGE:-}
old_local_base=$(docker image inspect --format '{{ .Id }}' "$LOCAL_BASE" 2>/dev/null || true)
if [ -z "$base" ]; then
    if docker image inspect "$PUBLIC_BASE" >/dev/null 2>&1 || timeout 300 docker pull -q "$PUBLIC_BASE" >/dev/null 2>&1; then
        base=$PUBLIC_BASE
    else
        echo "note: $PUBLIC_BASE cannot be pulled (no image registry answers): base $LOCAL_BASE, built from Debian packages"
        KNNSERVE_BASE_IMAGE=$LOCAL_BASE deploy/local-base/build.sh
        base=$LOCAL_BASE
    fi
fi

start=$(date +%s)
# Two tags: the build stage's too (TAG-build), so that a rebuild replaces both and the old ones can
# go; unnamed, the stage would stay behind as a dangling image after every change.
build_one() {  # build_one TAG [--target STAGE]: build, remove the image TAG named before; 0 when it changed
    tag=$1
    shift
    old=$(docker image inspect --format '{{ .Id }}' "$tag" 2>/dev/null || true)
    # --network host: the build reaches PyPI the way this host does. The output goes to a log,
    # shown when the build fails.
    if ! docker build --network host -f deploy/Dockerfile --build-arg PYTHON_IMAGE="$base" -t "$tag" "$@" . >"$LOG" 2>&1; then
        echo "error: docker build of $tag failed; the end of its log ($LOG):" >&2
        tail -n 40 "$LOG" >&2
        exit 1
    fi
    [ "$old" != "$(docker image inspect --format '{{ .Id }}' "$tag")" ] || return 1
    # The image this tag named before is ours and now unnamed: remove it (not if a container uses it).
    [ -z "$old" ] || docker image rm "$old" >/dev/null 2>&1 || true
}
changed=
build_one "$TAG-build" --target build || :
build_one "$TAG" && changed=1
# A stand-in base that deploy/local-base/build.sh replaced is ours too, and now unused.
if [ -n "$old_local_base" ] && [ "$old_local_base" != "$(docker image inspect --format '{{ .Id }}' "$LOCAL_BASE" 2>/dev/null)" ]; then
    docker image rm "$old_local_base" >/dev/null 2>&1 || true
fi
if [ -z "$changed" ]; then
    echo "$TAG is current (base $base; checked in $(( $(date +%s) - start )) s)"
else
    size=$(docker image inspect --format '{{ .Size }}' "$TAG" | awk '{ printf "%.0f MB", $1 / 1e6 }')
    echo "built $TAG from base $base in $(( $(date +%s) - start )) s: $size"
fi
