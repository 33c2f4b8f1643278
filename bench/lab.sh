# Servers for the benchmark and quick-start scripts, started by the test harness's `ferry-lab`
# (harness/src/bin/ferry-lab.rs) exactly as the tests start them. Source this file.

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The path of the ferry-lab binary, built on first use ($FERRY_LAB overrides).
ferry_lab_path() {
    if [ -z "${FERRY_LAB:-}" ]; then
        local root
        root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
        (cd "$root" && cargo build -q -p ferry-harness --bin ferry-lab >&2) || return 1
        FERRY_LAB=${CARGO_TARGET_DIR:-$root/target}/debug/ferry-lab
    fi
    echo "$FERRY_LAB"
}

# lab_server KIND DIR [ferry-lab options...]: runs `ferry-lab KIND` in the background with its
# server's directory under DIR, its pid in DIR/server.pid, and waits up to TRIES (default 240)
# half-seconds until it answers; DIR/address then holds HOST:PORT.
lab_server() {
    local kind=$1 dir=$2
    shift 2
    local lab
    lab=$(ferry_lab_path) || return 1
    FERRY_LAB=$lab
    mkdir -p "$dir"
    rm -f "$dir/address"
    # Started directly, so that its pid is ferry-lab's own: SIGTERM to it stops the server.
    "$lab" "$kind" --dir "$dir" --ready-file "$dir/address" "$@" >"$dir/ferry-lab.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$dir/server.pid"
    for _ in $(seq 1 "${TRIES:-240}"); do
        [ -s "$dir/address" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    echo "ferry-lab $kind in $dir did not start; its log:" >&2
    tail -40 "$dir/ferry-lab.log" >&2
    return 1
}

# stop_lab_server DIR: stops the server started in DIR (ferry-lab removes its directory).
stop_lab_server() {
    local pid
    pid=$(cat "$1/server.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || true
    # `wait` only knows this shell's children; poll for the others.
    wait "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    echo "ferry-lab (pid $pid) did not stop within 30 s" >&2
    return 1
}
