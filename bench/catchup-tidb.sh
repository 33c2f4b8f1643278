#!/usr/bin/env bash
# Catch-up into TiDB (not a test, not in CI): a MariaDB source writes a backlog of sysbench
# oltp_write_only transactions while nothing replicates, then each contender applies the same
# backlog into its own copy of the starting data on one TiDB server (unistore), one after the other:
#   merged  Ferry as shipped: queued source transactions merged into target transactions
#   single  Ferry with spec.incremental.mergeRows: 1 (transaction at a time, same worker count)
#   replay  the single-stream baseline: `mariadb-binlog -v | mariadb` into TiDB, the row events
#           turned into SQL by bench/incremental/binlog_to_sql.py (TiDB parses the `BINLOG '...'`
#           statements mariadb-binlog writes and ignores them, so the plain pipe applies nothing)
# Prints seconds and rows/s of each, the ratios, Ferry's CPU and peak RSS, and checks that every
# copy ends equal to the source.
#
# Usage: bench/catchup-tidb.sh   (env: TABLES=4 TABLE_SIZE=20000 BACKLOG_TXNS=20000 THREADS=4
#                                  WORKERS=4 CONTENDERS="merged single replay" FERRY=path)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. bench/full/lib.sh

TABLES=${TABLES:-4}
TABLE_SIZE=${TABLE_SIZE:-20000}
BACKLOG_TXNS=${BACKLOG_TXNS:-20000}
THREADS=${THREADS:-4}
WORKERS=${WORKERS:-4}
CONTENDERS=${CONTENDERS:-merged single replay}
CACHE=${FERRY_CACHE_DIR:-$HOME/.cache/ferry}
TIDB_VERSION=$(sed -n 's/^TIDB_VERSION="\(.*\)"$/\1/p' dev/build-go-tools.sh)
TIDB=$CACHE/bin/tidb-server-$TIDB_VERSION
[ -x "$TIDB" ] || { echo "no $TIDB: run dev/build-go-tools.sh tidb" >&2; exit 1; }
WORK=$(mktemp -d /tmp/ferry-bench-catchup.XXXXXX)
trap 'stop_mariadb "$WORK/source"; stop_tidb "$WORK/tidb"; rm -rf "$WORK"' EXIT

FERRY=${FERRY:-}
if [ -z "$FERRY" ]; then
    echo "== building ferry (release)"
    cargo build --release -q --locked --bin ferry
    FERRY=${CARGO_TARGET_DIR:-$ROOT/target}/release/ferry
fi

SPORT=$(free_port)
TPORT=$(free_port)
echo "== starting source MariaDB (:$SPORT) and target TiDB (:$TPORT) in $WORK"
start_mariadb "$WORK/source" "$SPORT" source
start_tidb "$WORK/tidb" "$TIDB" "$TPORT"
src() { mariadb -h127.0.0.1 -P"$SPORT" -uroot "$@"; }
dst() { mariadb -h127.0.0.1 -P"$TPORT" -uroot "$@"; }
sysbench_source() {
    local action=$1
    shift
    sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$SPORT" \
        --mysql-user=root --mysql-db=sbtest --tables="$TABLES" --table-size="$TABLE_SIZE" \
        --threads="$THREADS" --report-interval=0 "$@" "$action"
}

echo "== preparing $TABLES x $TABLE_SIZE rows, one copy per contender on TiDB"
src -e "CREATE DATABASE sbtest"
sysbench_source prepare >"$WORK/sysbench-prepare.log"
mariadb-dump -h127.0.0.1 -P"$SPORT" -uroot --single-transaction --skip-lock-tables \
    --skip-add-locks --skip-disable-keys --no-tablespaces sbtest >"$WORK/dump.sql"
for c in $CONTENDERS; do
    dst -e "CREATE DATABASE sbtest_$c"
    dst "sbtest_$c" <"$WORK/dump.sql"
done
head_pos() { src -N -e "SHOW MASTER STATUS" | awk '{print $1, $2}'; }
read -r P0_FILE P0_POS < <(head_pos)

echo "== writing a backlog of $BACKLOG_TXNS transactions ($((BACKLOG_TXNS * 4)) row changes)"
sysbench_source run --time=0 --events="$BACKLOG_TXNS" >"$WORK/sysbench-run.log"
read -r P1_FILE P1_POS < <(head_pos)
ROWS=$((BACKLOG_TXNS * 4))
[ "$P0_FILE" = "$P1_FILE" ] || { echo "the backlog spans binlog files; lower BACKLOG_TXNS" >&2; exit 1; }

# ferry_job NAME DATABASE EXTRA: the manifest of an Incremental job from P0 routed into DATABASE.
ferry_job() {
    write_job "$WORK/$1.yaml" "$SPORT" "$TPORT" sbtest Incremental "$1"
    cat >>"$WORK/$1.yaml" <<YAML
  incremental: {start: {file: $P0_FILE, pos: $P0_POS}$3}
  routes:
  - from: {database: sbtest}
    to: {database: $2}
YAML
}

checkpoint() {
    dst -N -e "SELECT binlog_file, binlog_pos FROM ferry_meta.incremental_checkpoint WHERE job = \
        (SELECT id FROM ferry_meta.jobs WHERE owner = 'cli' AND name = 'default/$1')" 2>/dev/null || true
}

# run_ferry NAME: Ferry from P0 until its checkpoint reaches P1; prints seconds.
run_ferry() {
    local name=$1 t0 file pos deadline=$((SECONDS + 3600))
    t0=$(date +%s.%N)
    /usr/bin/time -v -o "$WORK/$name-time.txt" "$FERRY" migrate -f "$WORK/$name.yaml" \
        --status-file "$WORK/$name-status.json" --concurrency "$WORKERS" 2>"$WORK/$name.log" &
    local pid=$!
    while ((SECONDS < deadline)); do
        read -r file pos < <(checkpoint "$name"; echo)
        if [ "${file:-}" = "$P1_FILE" ] && [ "${pos:-0}" -ge "$P1_POS" ]; then break; fi
        kill -0 "$pid" 2>/dev/null || { tail -20 "$WORK/$name.log" >&2; return 1; }
        sleep 0.1
    done
    echo "$(date +%s.%N) - $t0" | bc -l
    pkill -INT -f "$WORK/$name.yaml" || true
    wait "$pid" || true
}

# run_replay: the single-stream baseline into sbtest_replay; prints seconds.
run_replay() {
    local t0
    t0=$(date +%s.%N)
    mariadb-binlog --read-from-remote-server -h127.0.0.1 -P"$SPORT" -uroot -v \
        --base64-output=DECODE-ROWS --start-position="$P0_POS" --stop-position="$P1_POS" "$P0_FILE" |
        python3 bench/incremental/binlog_to_sql.py sbtest sbtest_replay id,k,c,pad |
        dst --init-command="SET SESSION sql_mode = ''"
    echo "$(date +%s.%N) - $t0" | bc -l
}

# Per table, its row count and a sum of row checksums, on the source or in a TiDB copy.
fingerprint() {
    local t
    for t in $(seq 1 "$TABLES"); do
        "$1" -N -e "SELECT COUNT(*), SUM(CRC32(CONCAT_WS('#', id, k, c, pad))) FROM $2.sbtest$t"
    done
}

declare -A SECS CPU RSS SAME
SOURCE_PRINT=$(fingerprint src sbtest)
for c in $CONTENDERS; do
    echo "== $c catches up"
    case $c in
        merged) ferry_job merged sbtest_merged "" ;;
        single) ferry_job single sbtest_single ", mergeRows: 1" ;;
    esac
    if [ "$c" = replay ]; then
        SECS[$c]=$(run_replay)
    else
        SECS[$c]=$(run_ferry "$c")
        CPU[$c]=$(awk -F: '/(User|System) time/ {cpu += $2} END {print cpu}' "$WORK/$c-time.txt")
        RSS[$c]=$(($(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/$c-time.txt") / 1024))
        grep -o 'source_transactions=[0-9]* target_transactions=[0-9]*' "$WORK/$c.log" | tail -1 || true
    fi
    SAME[$c]=$([ "$(fingerprint dst "sbtest_$c")" = "$SOURCE_PRINT" ] && echo yes || echo NO)
done

printf '\n== catch-up into TiDB: %s tables x %s rows, backlog %s transactions (%s row changes), %s Ferry workers\n' \
    "$TABLES" "$TABLE_SIZE" "$BACKLOG_TXNS" "$ROWS" "$WORKERS"
for c in $CONTENDERS; do
    printf '%-7s %7.1f s  %7.0f rows/s  same data: %s' "$c" "${SECS[$c]}" "$(echo "$ROWS / ${SECS[$c]}" | bc -l)" "${SAME[$c]}"
    [ -n "${CPU[$c]:-}" ] && printf '  CPU %.1f s  peak RSS %s MiB' "${CPU[$c]}" "${RSS[$c]}"
    printf '\n'
done
ratio() { [ -n "${SECS[$1]:-}" ] && [ -n "${SECS[$2]:-}" ] && printf 'merged vs %s: %.2fx faster%s\n' "$2" "$(echo "${SECS[$2]} / ${SECS[$1]}" | bc -l)" "$3"; }
ratio merged single "" || true
ratio merged replay " (goal >= 3x)" || true
for c in $CONTENDERS; do
    [ "${SAME[$c]}" = yes ] || { echo "sbtest_$c differs from the source: the result is void" >&2; exit 1; }
done
