#!/usr/bin/env bash
# Benchmark of the existing-data copy, against its peers in the same run on the same servers:
#   Ferry (`ferry migrate`, Full mode; LOAD DATA LOCAL, then multi-row statements as before),
#   mydumper + myloader (same thread count, end to end),
#   `mariadb-dump | mariadb`, and the target's own ceiling, parallel LOAD DATA of the same rows
#   (files written beforehand, not timed).
# The source: sysbench's oltp tables (TABLES x ROWS) plus a wide table with BLOB and JSON.
# Prints MB/s, rows/s, the ratios and Ferry's peak memory. Not run in CI (minutes, not seconds).
#
# Usage: bench/full-copy.sh            (THREADS=4 TABLES=8 ROWS=1000000 WIDE_ROWS=100000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. bench/full/lib.sh

THREADS=${THREADS:-4}
TABLES=${TABLES:-8}
ROWS=${ROWS:-1000000}
WIDE_ROWS=${WIDE_ROWS:-100000}
BUFFER_POOL=${BUFFER_POOL:-2G}
WORK=$(mktemp -d /tmp/ferry-bench.XXXXXX)
trap 'stop_mariadb "$WORK/source"; stop_mariadb "$WORK/target"; rm -rf "$WORK"' EXIT

echo "== building ferry (release)"
cargo build --release -q -p ferry-worker --bin ferry
FERRY=$ROOT/target/release/ferry
[ -x "$FERRY" ] || FERRY=${CARGO_TARGET_DIR:-$ROOT/target}/release/ferry

SPORT=$(free_port)
TPORT=$(free_port)
echo "== starting source (:$SPORT) and target (:$TPORT) in $WORK"
start_mariadb "$WORK/source" "$SPORT" source --innodb-buffer-pool-size="$BUFFER_POOL"
start_mariadb "$WORK/target" "$TPORT" target --innodb-buffer-pool-size="$BUFFER_POOL" \
    --innodb-log-file-size=1G
src() { mariadb -h127.0.0.1 -P"$SPORT" -uroot --default-character-set=utf8mb4 "$@"; }
dst() { mariadb -h127.0.0.1 -P"$TPORT" -uroot --default-character-set=utf8mb4 "$@"; }

echo "== generating $TABLES x $ROWS sysbench rows + $WIDE_ROWS wide rows"
generate_sbtest "$SPORT"
read -r TOTAL_ROWS TOTAL_BYTES < <(src -N -e "SELECT SUM(TABLE_ROWS), SUM(DATA_LENGTH) \
    FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'sbtest'")
TOTAL_ROWS=$(src -N -e "SELECT $(for t in $(src -N -e "SHOW TABLES FROM sbtest"); do
    printf '(SELECT COUNT(*) FROM sbtest.%s)+' "$t"; done)0")
echo "   $TOTAL_ROWS rows, $((TOTAL_BYTES / 1048576)) MiB of InnoDB data"

# Waits until a server has written back its dirty pages, so the background flushing of what came
# before (data generation, the previous tool's load) does not slow the tool measured next.
settle() {
    "$@" -e "SET GLOBAL innodb_max_dirty_pages_pct = 0"
    for _ in $(seq 1 900); do
        dirty=$("$@" -N -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
            WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'")
        [ "$dirty" -lt 200 ] && break
        sleep 1
    done
    "$@" -e "SET GLOBAL innodb_max_dirty_pages_pct = 90"
}
reset_target() {
    dst -e "DROP DATABASE IF EXISTS sbtest; DROP DATABASE IF EXISTS ferry_meta"
    settle dst
}

echo "== settling the source: dirty pages written, every table read once (a warm cache for all)"
settle src
src -N -e "CHECKSUM TABLE $(src -N -e "SELECT GROUP_CONCAT(CONCAT('sbtest.', TABLE_NAME)) \
    FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'sbtest'")" >/dev/null
now() { date +%s.%N; }
declare -A SECONDS_OF

echo "== ferry migrate (concurrency $THREADS)"
reset_target
write_job "$WORK/job.yaml" "$SPORT" "$TPORT" sbtest Full
start=$(now)
/usr/bin/time -v -o "$WORK/ferry.time" "$FERRY" migrate -f "$WORK/job.yaml" \
    --concurrency "$THREADS" >"$WORK/ferry.log" 2>&1 || { tail -30 "$WORK/ferry.log"; exit 1; }
SECONDS_OF[ferry]=$(echo "$(now) - $start" | bc)
FERRY_RSS_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/ferry.time")
# Ferry's copy must be exact before its time counts: every table's CHECKSUM TABLE on both sides.
TABLE_LIST=$(src -N -e "SELECT GROUP_CONCAT(CONCAT('sbtest.', TABLE_NAME) ORDER BY TABLE_NAME) \
    FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'sbtest'")
[ -n "$TABLE_LIST" ] || { echo "no sbtest table on the source" >&2; exit 1; }
if [ "$(src -N -e "CHECKSUM TABLE $TABLE_LIST")" != "$(dst -N -e "CHECKSUM TABLE $TABLE_LIST")" ]; then
    echo "ferry's copy differs from the source (CHECKSUM TABLE $TABLE_LIST):" >&2
    diff <(src -N -e "CHECKSUM TABLE $TABLE_LIST") <(dst -N -e "CHECKSUM TABLE $TABLE_LIST") >&2 || true
    exit 1
fi

echo "== ferry migrate with multi-row statements (FERRY_COPY_WRITE=insert, the path before LOAD DATA)"
reset_target
start=$(now)
FERRY_COPY_WRITE=insert "$FERRY" migrate -f "$WORK/job.yaml" --concurrency "$THREADS" \
    >"$WORK/ferry-insert.log" 2>&1 || { tail -30 "$WORK/ferry-insert.log"; exit 1; }
SECONDS_OF[ferry_statements]=$(echo "$(now) - $start" | bc)

echo "== mydumper + myloader ($THREADS threads)"
reset_target
start=$(now)
mydumper -h 127.0.0.1 -P "$SPORT" -u root -B sbtest -t "$THREADS" -o "$WORK/dump" \
    --rows 100000 >"$WORK/mydumper.log" 2>&1
myloader -h 127.0.0.1 -P "$TPORT" -u root -d "$WORK/dump" -t "$THREADS" -o \
    >"$WORK/myloader.log" 2>&1
SECONDS_OF[mydumper]=$(echo "$(now) - $start" | bc)
rm -rf "$WORK/dump"

echo "== mariadb-dump | mariadb"
reset_target
dst -e "CREATE DATABASE sbtest"
start=$(now)
mariadb-dump -h127.0.0.1 -P"$SPORT" -uroot --single-transaction --hex-blob sbtest \
    | mariadb -h127.0.0.1 -P"$TPORT" -uroot sbtest
SECONDS_OF[dump]=$(echo "$(now) - $start" | bc)

echo "== LOAD DATA ceiling ($THREADS parallel sessions; files written beforehand)"
reset_target
dst -e "CREATE DATABASE sbtest"
mariadb-dump -h127.0.0.1 -P"$SPORT" -uroot --no-data sbtest | dst sbtest
mkdir -p "$WORK/files"
for t in $(src -N -e "SHOW TABLES FROM sbtest"); do
    src -e "SELECT * INTO OUTFILE '$WORK/files/$t.txt' FROM sbtest.$t"
done
start=$(now)
ls "$WORK/files" | sed 's/\.txt$//' | xargs -P "$THREADS" -I{} mariadb -h127.0.0.1 -P"$TPORT" \
    -uroot --local-infile=1 sbtest -e "SET foreign_key_checks=0, unique_checks=0;
    LOAD DATA LOCAL INFILE '$WORK/files/{}.txt' INTO TABLE {}"
SECONDS_OF[loaddata]=$(echo "$(now) - $start" | bc)

MB=$(echo "scale=1; $TOTAL_BYTES / 1048576" | bc)
echo
echo "== results: $TOTAL_ROWS rows, $MB MiB (source InnoDB data), $THREADS threads, $(nproc) cores"
printf '%-28s %9s %10s %12s\n' tool seconds MiB/s rows/s
for tool in ferry ferry_statements mydumper dump loaddata; do
    s=${SECONDS_OF[$tool]}
    printf '%-28s %9.1f %10.1f %12.0f\n' "$tool" "$s" "$(echo "$MB / $s" | bc -l)" \
        "$(echo "$TOTAL_ROWS / $s" | bc -l)"
done
echo
printf 'ferry vs mydumper+myloader: %.2fx faster (goal >= 1.3x)\n' \
    "$(echo "${SECONDS_OF[mydumper]} / ${SECONDS_OF[ferry]}" | bc -l)"
printf 'ferry vs mariadb-dump|mariadb: %.2fx faster\n' \
    "$(echo "${SECONDS_OF[dump]} / ${SECONDS_OF[ferry]}" | bc -l)"
printf 'ferry vs LOAD DATA ceiling: %.2fx of its speed (goal >= 0.95x)\n' \
    "$(echo "${SECONDS_OF[loaddata]} / ${SECONDS_OF[ferry]}" | bc -l)"
printf 'ferry LOAD DATA vs ferry statements: %.2fx faster\n' \
    "$(echo "${SECONDS_OF[ferry_statements]} / ${SECONDS_OF[ferry]}" | bc -l)"
echo "ferry peak RSS: $((FERRY_RSS_KB / 1024)) MiB (goal < 256 MiB)"
