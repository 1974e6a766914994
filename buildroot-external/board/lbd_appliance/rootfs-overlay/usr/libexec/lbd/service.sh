# Helpers for the init scripts (sourced).

# running PIDFILE: whether the process of PIDFILE runs.
running() {
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# stop_supervised PIDFILE PROGRAM: stops a supervisor and its program, and
# waits (up to 10 s) until both are gone, so /config can then be remounted
# read-only; what is left after that is killed.
stop_supervised() {
    if running "$1"; then
        kill "$(cat "$1")"
    fi
    i=0
    while [ $i -lt 100 ] && { running "$1" || pidof "$2" >/dev/null; }; do
        usleep 100000
        i=$((i + 1))
    done
    killall -9 "$2" 2>/dev/null
    rm -f "$1"
}
