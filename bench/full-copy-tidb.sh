#!/usr/bin/env bash
# Benchmark of the existing-data copy into TiDB (the product's target), against its peers in the
# same run on the same servers: a MariaDB source, a TiDB target (tidb-server on unistore, the
# binary dev/build-go-tools.sh builds), and
#   Ferry (`ferry migrate`, Full mode) writing with LOAD DATA LOCAL (its default where the target
#     allows it) and, for comparison, with multi-row statements (FERRY_COPY_WRITE=insert),
#   mydumper + myloader (same thread count, end to end),
#   TiDB Lightning in its logical `tidb` backend, when its binary is there
#     (dev/build-go-tools.sh lightning; its build did not finish on the 2-core machine this was
#     written on, so run_lightning's configuration has not been run yet),
#   the target's ceiling: parallel LOAD DATA LOCAL of the same rows from files written beforehand.
# Every tool runs ROUNDS times in turn (A B C ... A B C ...) so that a machine shared with others
# slows all of them alike; the medians and their ratios are printed, with the load average.
# Ferry's copy is checked for exactness (the row count and a checksum of every table) before its
# time counts. Not run in CI (minutes, not seconds).
#
# Usage: bench/full-copy-tidb.sh   (THREADS=4 TABLES=4 ROWS=100000 WIDE_ROWS=20000 ROUNDS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. bench/full/lib.sh

THREADS=${THREADS:-4}
TABLES=${TABLES:-4}
ROWS=${ROWS:-100000}
WIDE_ROWS=${WIDE_ROWS:-20000}
ROUNDS=${ROUNDS:-3}
CACHE=${FERRY_CACHE_DIR:-$HOME/.cache/ferry}
TIDB_VERSION=$(sed -n 's/^TIDB_VERSION="\(.*\)"$/\1/p' dev/build-go-tools.sh)
TIDB=$CACHE/bin/tidb-server-$TIDB_VERSION
LIGHTNING=$CACHE/bin/tidb-lightning-$TIDB_VERSION
[ -x "$TIDB" ] || { echo "no $TIDB: run dev/build-go-tools.sh tidb" >&2; exit 1; }
WORK=$(mktemp -d /tmp/ferry-bench-tidb.XXXXXX)
trap 'stop_mariadb "$WORK/source"; stop_tidb "$WORK/tidb"; rm -rf "$WORK"' EXIT

FERRY=${FERRY:-}
if [ -z "$FERRY" ]; then
    echo "== building ferry (release)"
    cargo build --release -q -p ferry-worker --bin ferry
    FERRY=${CARGO_TARGET_DIR:-$ROOT/target}/release/ferry
fi

SPORT=$(free_port)
TPORT=$(free_port)
echo "== starting source MariaDB (:$SPORT) and target TiDB (:$TPORT) in $WORK"
start_mariadb "$WORK/source" "$SPORT" source
start_tidb "$WORK/tidb" "$TIDB" "$TPORT"
src() { mariadb -h127.0.0.1 -P"$SPORT" -uroot --default-character-set=utf8mb4 "$@"; }
dst() { mariadb -h127.0.0.1 -P"$TPORT" -uroot --default-character-set=utf8mb4 "$@"; }

echo "== generating $TABLES x $ROWS sysbench rows + $WIDE_ROWS wide rows"
generate_sbtest "$SPORT"
TABLES_LIST=$(src -N -e "SHOW TABLES FROM sbtest")
TOTAL_ROWS=$(src -N -e "SELECT $(for t in $TABLES_LIST; do
    printf '(SELECT COUNT(*) FROM sbtest.%s)+' "$t"; done)0")
TOTAL_BYTES=$(src -N -e "SELECT SUM(DATA_LENGTH) FROM information_schema.TABLES \
    WHERE TABLE_SCHEMA = 'sbtest'")
echo "   $TOTAL_ROWS rows, $((TOTAL_BYTES / 1048576)) MiB of InnoDB data"

# The ceiling's input and the schema every peer but Ferry and myloader needs, made once.
mkdir -p "$WORK/files"
for t in $TABLES_LIST; do
    src -e "SELECT * INTO OUTFILE '$WORK/files/$t.txt' FROM sbtest.$t"
done
mariadb-dump -h127.0.0.1 -P"$SPORT" -uroot --no-data --skip-add-drop-table sbtest \
    >"$WORK/schema.sql"
mydumper -h 127.0.0.1 -P "$SPORT" -u root -B sbtest -t "$THREADS" -o "$WORK/dump" \
    --rows 100000 >"$WORK/mydumper.log" 2>&1

reset_target() { dst -e "DROP DATABASE IF EXISTS sbtest; DROP DATABASE IF EXISTS ferry_meta"; }
create_schema() { dst -e "CREATE DATABASE sbtest" && dst sbtest <"$WORK/schema.sql"; }

# A checksum of every table, the same query on both servers (TiDB has no CHECKSUM TABLE).
table_sums() {
    local t
    for t in $TABLES_LIST; do
        local cols
        cols=$(src -N -e "SELECT GROUP_CONCAT(CONCAT('IFNULL(HEX(\`', COLUMN_NAME, '\`),''~'')') \
            ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS \
            WHERE TABLE_SCHEMA = 'sbtest' AND TABLE_NAME = '$t'")
        "$@" -N -e "SELECT '$t', COUNT(*), SUM(CRC32(CONCAT_WS('|', $cols))) FROM sbtest.$t"
    done
}

run_ferry() {
    reset_target
    write_job "$WORK/job.yaml" "$SPORT" "$TPORT" sbtest Full
    FERRY_COPY_WRITE=$1 /usr/bin/time -v -o "$WORK/ferry-$1.time" "$FERRY" migrate \
        -f "$WORK/job.yaml" --concurrency "$THREADS" >"$WORK/ferry-$1.log" 2>&1 \
        || { tail -30 "$WORK/ferry-$1.log"; return 1; }
}
check_ferry() {
    if [ "$(table_sums src)" != "$(table_sums dst)" ]; then
        echo "ferry's copy ($1) differs from the source:" >&2
        diff <(table_sums src) <(table_sums dst) >&2 || true
        exit 1
    fi
}
run_myloader() {
    reset_target
    myloader -h 127.0.0.1 -P "$TPORT" -u root -d "$WORK/dump" -t "$THREADS" -o \
        >"$WORK/myloader.log" 2>&1
}
run_loaddata() {
    reset_target
    create_schema
    ls "$WORK/files" | sed 's/\.txt$//' | xargs -P "$THREADS" -I{} mariadb -h127.0.0.1 \
        -P"$TPORT" -uroot --local-infile=1 sbtest -e "SET foreign_key_checks=0;
        LOAD DATA LOCAL INFILE '$WORK/files/{}.txt' INTO TABLE {}"
}
run_lightning() {
    reset_target
    create_schema
    cat >"$WORK/lightning.toml" <<TOML
[lightning]
level = "warn"
file = "$WORK/lightning.log"
region-concurrency = $THREADS
[tikv-importer]
backend = "tidb"
on-duplicate = "replace"
[mydumper]
data-source-dir = "$WORK/dump"
no-schema = true
[tidb]
host = "127.0.0.1"
port = $TPORT
user = "root"
status-port = $(cat "$WORK/tidb/status-port")
[checkpoint]
enable = false
TOML
    "$LIGHTNING" -config "$WORK/lightning.toml" >"$WORK/lightning.out" 2>&1 \
        || { tail -20 "$WORK/lightning.out" "$WORK/lightning.log" >&2; return 1; }
}

TOOLS=(ferry ferry_statements myloader loaddata)
if [ -x "$LIGHTNING" ]; then
    TOOLS+=(lightning)
else
    echo "== no $LIGHTNING (dev/build-go-tools.sh lightning): TiDB Lightning left out"
fi
declare -A TIMES
now() { date +%s.%N; }
for round in $(seq 1 "$ROUNDS"); do
    for tool in "${TOOLS[@]}"; do
        start=$(now)
        case $tool in
            ferry) run_ferry load ;;
            ferry_statements) run_ferry insert ;;
            myloader) run_myloader ;;
            loaddata) run_loaddata ;;
            lightning) run_lightning ;;
        esac
        secs=$(echo "$(now) - $start" | bc)
        TIMES[$tool]="${TIMES[$tool]:-} $secs"
        case $tool in ferry) check_ferry load ;; ferry_statements) check_ferry insert ;; esac
        echo "   round $round: $tool ${secs}s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
MB=$(echo "scale=1; $TOTAL_BYTES / 1048576" | bc)
echo
echo "== results into TiDB: $TOTAL_ROWS rows, $MB MiB (source InnoDB data), $THREADS threads,"
echo "   $(nproc) cores, medians of $ROUNDS rounds, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-28s %9s %10s %12s\n' tool seconds MiB/s rows/s
declare -A MEDIAN
for tool in "${TOOLS[@]}"; do
    MEDIAN[$tool]=$(echo "${TIMES[$tool]}" | median)
    s=${MEDIAN[$tool]}
    printf '%-28s %9.1f %10.1f %12.0f\n' "$tool" "$s" "$(echo "$MB / $s" | bc -l)" \
        "$(echo "$TOTAL_ROWS / $s" | bc -l)"
done
echo
ratio() { echo "${MEDIAN[$1]} / ${MEDIAN[$2]}" | bc -l; }
printf 'ferry vs myloader: %.2fx faster (goal >= 1.5x)\n' "$(ratio myloader ferry)"
[ -n "${MEDIAN[lightning]:-}" ] &&
    printf 'ferry vs TiDB Lightning (tidb backend): %.2fx faster (goal >= 1.5x)\n' \
        "$(ratio lightning ferry)"
printf 'ferry vs LOAD DATA ceiling: %.2fx of its speed\n' "$(ratio loaddata ferry)"
printf 'ferry LOAD DATA vs ferry statements: %.2fx faster\n' "$(ratio ferry_statements ferry)"
RSS_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/ferry-load.time")
echo "ferry peak RSS: $((RSS_KB / 1024)) MiB (goal < 256 MiB)"
