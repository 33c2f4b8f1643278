#!/usr/bin/env bash
# Incremental replication benchmark (not a test, not in CI). Starts throwaway MariaDB servers: a
# source, Ferry's target and a native replica, then measures:
#   (a) sustained: sysbench oltp_write_only at full speed on the source while Ferry replicates:
#       applied rows/s, lag p50/p99 (seconds and bytes, sampled from Ferry's status file);
#   (b) catch-up: a backlog of row changes applied by Ferry versus the native replica
#       (slave_parallel_threads = Ferry's worker count): rows/s of each, the ratio, Ferry's peak RSS.
#
# Usage: bench/incremental.sh            (env: TABLES, TABLE_SIZE, SUSTAIN_SECONDS, BACKLOG_TXNS,
#                                          THREADS, WORKERS, NATIVE_THREADS (default WORKERS;
#                                          0 = the replica's single SQL thread), FERRY,
#                                          MERGE_ROWS (spec.incremental.mergeRows; 1 = no merging);
#                                          PERF=FILE writes a profile of Ferry's catch-up to FILE)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
TABLES=${TABLES:-4}
TABLE_SIZE=${TABLE_SIZE:-100000}
SUSTAIN_SECONDS=${SUSTAIN_SECONDS:-60}
# oltp_write_only changes 4 rows per transaction (2 updates, 1 delete, 1 insert).
BACKLOG_TXNS=${BACKLOG_TXNS:-250000}
THREADS=${THREADS:-4}
WORKERS=${WORKERS:-4}
NATIVE_THREADS=${NATIVE_THREADS:-$WORKERS}
FERRY=${FERRY:-}
if [[ -n "${PERF:-}" ]] && ! command -v perf >/dev/null; then
  echo "PERF is set but perf is missing: install it (Debian: apt-get install linux-perf)" >&2
  exit 1
fi
WORK=$(mktemp -d /tmp/ferry-bench-XXXXXX)
source "$HERE/incremental/lib.sh"
trap cleanup EXIT

if [[ -z "$FERRY" ]]; then
  (cd "$ROOT" && cargo build --release --locked --bin ferry >&2)
  FERRY="${CARGO_TARGET_DIR:-$ROOT/target}/release/ferry"
fi

log "work dir $WORK"
start_server source 1 --log-bin=mysql-bin --binlog-format=ROW --binlog-row-image=FULL &
start_server target 2 --skip-log-bin &
start_server replica 3 --skip-log-bin --slave-parallel-threads="$NATIVE_THREADS" --slave-parallel-mode=optimistic &
wait
for s in source target replica; do
  sql "$s" "CREATE USER 'ferry'@'%' IDENTIFIED BY 'bench'; GRANT ALL ON *.* TO 'ferry'@'%'"
done

log "preparing $TABLES x $TABLE_SIZE rows"
sql source "CREATE DATABASE sbtest"
sysbench_run prepare >/dev/null
mariadb-dump -uroot -h127.0.0.1 -P"$(port source)" --databases sbtest --single-transaction >"$WORK/dump.sql"
sql target "SOURCE $WORK/dump.sql"
sql replica "SOURCE $WORK/dump.sql"
read -r P0_FILE P0_POS < <(head_pos)
write_manifest "$P0_FILE" "$P0_POS"

# (a) sustained load.
log "(a) sysbench oltp_write_only for ${SUSTAIN_SECONDS}s with $THREADS threads while Ferry replicates"
start_ferry
sample_status "$WORK/samples.txt" &
SAMPLER=$!
sysbench_run run --time="$SUSTAIN_SECONDS" >"$WORK/sysbench-a.txt"
read -r P1_FILE P1_POS < <(head_pos)
wait_ferry "$P1_FILE" "$P1_POS" 600
kill "$SAMPLER" 2>/dev/null || true
stop_ferry
SOURCE_TPS=$(awk '/transactions:/ {gsub(/\(/,"",$3); print $3}' "$WORK/sysbench-a.txt")
read -r A_ROWS_S A_LAG50 A_LAG99 A_BYTES50 A_BYTES99 < <(summarize "$WORK/samples.txt")

# Bring the native replica to the same point.
sql replica "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$(port source), MASTER_USER='ferry', \
  MASTER_PASSWORD='bench', MASTER_LOG_FILE='$P0_FILE', MASTER_LOG_POS=$P0_POS; \
  START SLAVE UNTIL MASTER_LOG_FILE='$P1_FILE', MASTER_LOG_POS=$P1_POS"
wait_replica "$P1_FILE" "$P1_POS" 900
sql replica "STOP SLAVE"

# (b) catch-up of a backlog.
log "(b) writing a backlog of $BACKLOG_TXNS transactions ($((BACKLOG_TXNS * 4)) row changes)"
sysbench_run run --time=0 --events="$BACKLOG_TXNS" >"$WORK/sysbench-b.txt"
read -r P2_FILE P2_POS < <(head_pos)
ROWS=$((BACKLOG_TXNS * 4))

log "(b) Ferry catches up"
T0=$(date +%s.%N)
start_ferry timed
wait_ferry "$P2_FILE" "$P2_POS" 3600
T1=$(date +%s.%N)
stop_ferry
FERRY_SECONDS=$(echo "$T1 - $T0" | bc -l)
MERGED=$(grep -o 'source_transactions=[0-9]* target_transactions=[0-9]*' "$WORK/ferry.log" | tail -1 || true)
PEAK_RSS_KB=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/ferry-time.txt")
FERRY_CPU=$(awk -F: '/(User|System) time/ {cpu += $2} END {print cpu}' "$WORK/ferry-time.txt")
if [[ -n "${PERF:-}" ]]; then
  # Inclusive time per function (where the time goes), then exclusive (what burns it).
  { perf report -i "$WORK/perf.data" --children --stdio -g none --percent-limit 2
    perf report -i "$WORK/perf.data" --no-children --stdio -g none --percent-limit 0.5; } >"$PERF" 2>/dev/null
fi

log "(b) the native replica catches up"
T0=$(date +%s.%N)
sql replica "START SLAVE"
wait_replica "$P2_FILE" "$P2_POS" 3600
T1=$(date +%s.%N)
NATIVE_SECONDS=$(echo "$T1 - $T0" | bc -l)

log "checking that target and replica hold the same data"
SAME=$(same_data && echo yes || echo NO)

FERRY_RATE=$(echo "$ROWS / $FERRY_SECONDS" | bc -l)
NATIVE_RATE=$(echo "$ROWS / $NATIVE_SECONDS" | bc -l)
printf '\n== Ferry incremental benchmark (%s tables x %s rows, %s sysbench threads, %s Ferry workers, %s native replica threads)\n' \
  "$TABLES" "$TABLE_SIZE" "$THREADS" "$WORKERS" "$NATIVE_THREADS"
printf '(a) source sustained %s txn/s (%.0f row changes/s); Ferry applied %s rows/s; lag p50 %ss p99 %ss; lag bytes p50 %s p99 %s\n' \
  "$SOURCE_TPS" "$(echo "$SOURCE_TPS * 4" | bc -l)" "$A_ROWS_S" "$A_LAG50" "$A_LAG99" "$A_BYTES50" "$A_BYTES99"
printf '(b) backlog %s row changes: Ferry %.1f s (%.0f rows/s), native replica %.1f s (%.0f rows/s), ratio Ferry/native %.2f; Ferry CPU %.1f s, peak RSS %s MiB; same data: %s\n' \
  "$ROWS" "$FERRY_SECONDS" "$FERRY_RATE" "$NATIVE_SECONDS" "$NATIVE_RATE" \
  "$(echo "$FERRY_RATE / $NATIVE_RATE" | bc -l)" "$FERRY_CPU" "$((PEAK_RSS_KB / 1024))" "$SAME"
printf '(b) Ferry merged %s (mergeRows %s)\n' "${MERGED:-?}" "${MERGE_ROWS:-default}"
if [ "$SAME" != yes ]; then
  log "the target differs from the native replica: the benchmark result is void"
  exit 1
fi
