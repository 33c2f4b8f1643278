#!/usr/bin/env bash
# Benchmark of `ferry verify` against a peer in the same run on the same servers. The peer is
# sync-diff-inspector (v5.0.3 of github.com/pingcap/tidb-tools, the only version the Go module
# proxy lists), built by bench/verify-build-sync-diff.sh or named by SYNC_DIFF; PEER=scan, or a
# failed build, takes a full-scan comparison instead (bench/verify-full-scan.sh: every table read
# in key order from both servers and compared byte for byte, THREADS tables at once).
# The data: sysbench's oltp tables (TABLES x ROWS) plus a wide table with BLOB and JSON, as in
# bench/full-copy.sh, copied by `ferry migrate`. Both tools must call the copy equal and find a
# changed row before anything is timed; then they run in turn, RUNS times each, and the script
# prints each one's median seconds, the ratio and ferry's peak memory. Not run in CI.
#
# Usage: bench/verify.sh     (THREADS=4 TABLES=8 ROWS=1000000 WIDE_ROWS=100000 RUNS=3;
#                             FERRY=path/to/ferry skips the release build)
#        KEEP=1 bench/verify.sh   leaves the servers running after the figures, until Ctrl-C
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. bench/full/lib.sh

THREADS=${THREADS:-4}
TABLES=${TABLES:-8}
ROWS=${ROWS:-1000000}
WIDE_ROWS=${WIDE_ROWS:-100000}
RUNS=${RUNS:-3}
BUFFER_POOL=${BUFFER_POOL:-2G}
WORK=$(mktemp -d /tmp/ferry-bench-verify.XXXXXX)
trap 'stop_mariadb "$WORK/source"; stop_mariadb "$WORK/target"; rm -rf "$WORK"' EXIT

if [ -z "${FERRY:-}" ]; then
    echo "== building ferry (release)"
    cargo build --release -q --workspace --locked --bin ferry
    FERRY=${CARGO_TARGET_DIR:-$ROOT/target}/release/ferry
fi

SPORT=$(free_port)
TPORT=$(free_port)
echo "== starting source (:$SPORT) and target (:$TPORT) in $WORK"
start_mariadb "$WORK/source" "$SPORT" source --innodb-buffer-pool-size="$BUFFER_POOL"
start_mariadb "$WORK/target" "$TPORT" target --innodb-buffer-pool-size="$BUFFER_POOL"
src() { mariadb -h127.0.0.1 -P"$SPORT" -uroot --default-character-set=utf8mb4 "$@"; }
dst() { mariadb -h127.0.0.1 -P"$TPORT" -uroot --default-character-set=utf8mb4 "$@"; }

echo "== generating $TABLES x $ROWS sysbench rows + $WIDE_ROWS wide rows, copying them"
generate_sbtest "$SPORT"
write_job "$WORK/job.yaml" "$SPORT" "$TPORT" sbtest Full
"$FERRY" migrate -f "$WORK/job.yaml" --concurrency "$THREADS" >"$WORK/migrate.log" 2>&1 \
    || { tail -30 "$WORK/migrate.log"; exit 1; }
read -r TOTAL_ROWS TOTAL_BYTES < <(src -N -e "SELECT SUM(TABLE_ROWS), SUM(DATA_LENGTH) \
    FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'sbtest'")
echo "   about $TOTAL_ROWS rows, $((TOTAL_BYTES / 1048576)) MiB of InnoDB data on each side"

FERRY_CMD=("$FERRY" verify -f "$WORK/job.yaml" --concurrency "$THREADS")
if [ -z "${SYNC_DIFF:-}" ] && [ "${PEER:-sync-diff}" != scan ]; then
    echo "== building sync-diff-inspector (cached after the first time)"
    SYNC_DIFF=$(bench/verify-build-sync-diff.sh 2>"$WORK/sync-diff-build.log") || {
        echo "   cannot build it (tail of $WORK/sync-diff-build.log below): comparing with a full scan"
        tail -5 "$WORK/sync-diff-build.log"
        SYNC_DIFF=
    }
fi
if [ -n "${SYNC_DIFF:-}" ]; then
    PEER_NAME=sync-diff-inspector
    cat >"$WORK/sync-diff.toml" <<TOML
log-level = "warn"
chunk-size = 10000
check-thread-count = $THREADS
sample-percent = 100
use-checksum = true
use-checkpoint = false
fix-sql-file = "$WORK/sync-diff-fix.sql"
[[check-tables]]
schema = "sbtest"
tables = ["~^"]
[[source-db]]
host = "127.0.0.1"
port = $SPORT
user = "root"
password = ""
instance-id = "source-1"
[target-db]
host = "127.0.0.1"
port = $TPORT
user = "root"
password = ""
instance-id = "target-1"
TOML
    PEER_CMD=("$SYNC_DIFF" --config "$WORK/sync-diff.toml")
else
    PEER_NAME="full scan"
    PEER_CMD=("$ROOT/bench/verify-full-scan.sh" "$SPORT" "$TPORT" sbtest "$THREADS")
fi
echo "   ferry:  ${FERRY_CMD[*]}"
echo "   peer ($PEER_NAME): ${PEER_CMD[*]}"

echo "== both must call the copy equal, and both must find one changed row"
"${FERRY_CMD[@]}" >"$WORK/ferry.out" 2>&1 || { cat "$WORK/ferry.out"; exit 1; }
"${PEER_CMD[@]}" >"$WORK/peer.out" 2>&1 || { cat "$WORK/peer.out"; exit 1; }
dst -e "UPDATE sbtest.sbtest1 SET c = CONCAT(c, '!') WHERE id = $((ROWS / 2))"
if "${FERRY_CMD[@]}" >"$WORK/ferry.out" 2>&1; then echo "ferry missed the change" >&2; exit 1; fi
if "${PEER_CMD[@]}" >"$WORK/peer.out" 2>&1; then echo "the peer missed the change" >&2; exit 1; fi
dst -e "UPDATE sbtest.sbtest1 SET c = LEFT(c, LENGTH(c) - 1) WHERE id = $((ROWS / 2))"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
: >"$WORK/ferry.secs"
: >"$WORK/peer.secs"
RSS_KB=0
echo "== timing, in turn, $RUNS runs each"
for run in $(seq 1 "$RUNS"); do
    start=$(now)
    /usr/bin/time -v -o "$WORK/ferry.time" "${FERRY_CMD[@]}" >/dev/null 2>&1
    echo "$(now) - $start" | bc >>"$WORK/ferry.secs"
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/ferry.time")
    [ "$rss" -gt "$RSS_KB" ] && RSS_KB=$rss
    start=$(now)
    "${PEER_CMD[@]}" >/dev/null 2>&1
    echo "$(now) - $start" | bc >>"$WORK/peer.secs"
    echo "   run $run: ferry $(tail -1 "$WORK/ferry.secs") s, $PEER_NAME $(tail -1 "$WORK/peer.secs") s"
done
FERRY_S=$(median <"$WORK/ferry.secs")
PEER_S=$(median <"$WORK/peer.secs")
MB=$(echo "scale=1; $TOTAL_BYTES / 1048576" | bc)
echo
echo "== results: $MB MiB per side, $THREADS threads, $(nproc) cores (medians of $RUNS runs)"
printf '%-22s %9.1f s %9.1f MiB/s\n' "ferry verify" "$FERRY_S" "$(echo "$MB / $FERRY_S" | bc -l)"
printf '%-22s %9.1f s %9.1f MiB/s\n' "$PEER_NAME" "$PEER_S" "$(echo "$MB / $PEER_S" | bc -l)"
printf 'ferry verify vs %s: %.2fx faster (goal >= 2x)\n' "$PEER_NAME" "$(echo "$PEER_S / $FERRY_S" | bc -l)"
echo "ferry verify peak RSS: $((RSS_KB / 1024)) MiB"
if [ -n "${KEEP:-}" ]; then
    echo "== KEEP: servers stay up; ferry: ${FERRY_CMD[*]}; peer: ${PEER_CMD[*]}; Ctrl-C ends"
    sleep infinity
fi
