#!/bin/sh
# Runs a command with a docker daemon answering: when none does and this is root with `dockerd`
# installed (Debian's docker.io), starts one for the command and stops it afterwards; a daemon that
# was already running is used and left alone. Without either, the command runs anyway (the image
# tests then skip, or fail under KNNSERVE_REQUIRE_TOOLS=1). Exits with the command's status.
#
#     scripts/with_dockerd.sh COMMAND [ARGS...]
set -u

LOG=${KNNSERVE_DOCKERD_LOG:-${TMPDIR:-/tmp}/knnserve-dockerd.log}
started=

stop_started() {
    [ -n "$started" ] || return 0
    kill -TERM "$started" 2>/dev/null
    # dockerd stops its containers and its containerd before it exits (a few seconds).
    i=0
    while kill -0 "$started" 2>/dev/null && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$started" 2>/dev/null && echo "warning: dockerd (pid $started) still running after 30 s" >&2
    started=
}

if docker info >/dev/null 2>&1; then
    :
elif [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null 2>&1; then
    dockerd --pidfile /var/run/knnserve-dockerd.pid >"$LOG" 2>&1 &
    started=$!
    trap 'stop_started' EXIT
    trap 'stop_started; exit 130' INT
    trap 'stop_started; exit 143' TERM
    i=0
    until docker info >/dev/null 2>&1; do
        if ! kill -0 "$started" 2>/dev/null || [ "$i" -ge 600 ]; then
            echo "error: dockerd did not start (log: $LOG):" >&2
            tail -n 20 "$LOG" >&2
            kill -0 "$started" 2>/dev/null || started=
            exit 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    echo "started dockerd (pid $started, log $LOG); it stops when this command ends"
else
    echo "note: no docker daemon answers and none can be started here (needs root and dockerd): image not built, its tests skip or fail"
fi

"$@"
status=$?
stop_started
exit "$status"
