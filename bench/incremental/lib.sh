# Helpers for bench/incremental.sh (sourced; uses WORK, TABLES, TABLE_SIZE, THREADS, WORKERS, FERRY,
# MERGE_ROWS).

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# shellcheck source=bench/lab.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lab.sh"

port() { cat "$WORK/$1/port"; }

# start_server NAME SERVER_ID ARGS...: a throwaway MariaDB in $WORK/NAME, started by ferry-lab
# (bench/lab.sh) as the tests start it, with the benchmark's settings on top; its port in
# $WORK/NAME/port.
start_server() {
  local name=$1 id=$2; shift 2
  local dir="$WORK/$name"
  mkdir -p "$dir"
  free_port >"$dir/port"
  # A server given a binary log is a source (ROW, FULL images); the others are targets.
  local role=target
  [[ " $* " == *" --log-bin"* ]] && role=source
  TRIES=150 lab_server mariadb "$dir" --port "$(port "$name")" --role "$role" -- --server-id="$id" \
    --innodb-buffer-pool-size=1G --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 "$@"
}

sql() { mariadb -uroot -h127.0.0.1 -P"$(port "$1")" -N -B -e "$2"; }

cleanup() {
  [[ -f "$WORK/ferry.pid" ]] && kill "$(cat "$WORK/ferry.pid")" 2>/dev/null || true
  for s in source target replica; do
    [[ -f "$WORK/$s/server.pid" ]] && kill "$(cat "$WORK/$s/server.pid")" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"
}

sysbench_run() {
  local action=$1; shift
  sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$(port source)" \
    --mysql-user=root --mysql-db=sbtest --tables="$TABLES" --table-size="$TABLE_SIZE" \
    --threads="$THREADS" --report-interval=0 "$@" "$action"
}

head_pos() { sql source "SHOW MASTER STATUS" | awk '{print $1, $2}'; }

write_manifest() {
  cat >"$WORK/job.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: bench}
---
apiVersion: ferry.dev/v1alpha1
kind: MigrationSource
metadata: {name: src}
spec: {type: MariaDB, host: 127.0.0.1, port: $(port source), user: ferry, passwordSecretRef: {name: creds, key: password}}
---
apiVersion: ferry.dev/v1alpha1
kind: MigrationJob
metadata: {name: bench, namespace: default}
spec:
  sourceRef: {name: src}
  target: {host: 127.0.0.1, port: $(port target), user: ferry, passwordSecretRef: {name: creds, key: password}}
  mode: Incremental
  incremental: {start: {file: $1, pos: $2}${MERGE_ROWS:+, mergeRows: $MERGE_ROWS}}
  objects: {databases: [sbtest]}
EOF
}

# start_ferry [timed]: runs ferry migrate in the background (under /usr/bin/time -v if timed).
start_ferry() {
  local cmd=("$FERRY" migrate -f "$WORK/job.yaml" --status-file "$WORK/status.json" --concurrency "$WORKERS")
  if [[ "${1:-}" == timed ]]; then
    # PERF=FILE: also profile Ferry (call graphs), reported into FILE when it stops.
    [[ -n "${PERF:-}" ]] && cmd=(perf record -F 99 --call-graph dwarf,16384 -o "$WORK/perf.data" -- "${cmd[@]}")
    /usr/bin/time -v -o "$WORK/ferry-time.txt" "${cmd[@]}" 2>>"$WORK/ferry.log" &
  else
    "${cmd[@]}" 2>>"$WORK/ferry.log" &
  fi
  echo $! >"$WORK/ferry.pid"
}

stop_ferry() {
  local pid; pid=$(cat "$WORK/ferry.pid")
  # Every process whose command names this run's manifest: ferry and its /usr/bin/time or perf.
  pkill -INT -f "$WORK/job.yaml" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$WORK/ferry.pid"
}

checkpoint() {
  sql target "SELECT binlog_file, binlog_pos FROM ferry_meta.incremental_checkpoint WHERE job = \
    (SELECT id FROM ferry_meta.jobs WHERE owner = 'cli' AND name = 'default/bench')" 2>/dev/null || true
}

# wait_ferry FILE POS TIMEOUT_SECONDS
wait_ferry() {
  local deadline=$((SECONDS + $3)) file pos
  while ((SECONDS < deadline)); do
    read -r file pos < <(checkpoint; echo)
    if [[ -n "${file:-}" && ( "$file" > "$1" || ( "$file" == "$1" && "$pos" -ge "$2" ) ) ]]; then return 0; fi
    sleep 0.1
  done
  log "Ferry did not reach $1:$2 (at ${file:-?}:${pos:-?})"; tail -20 "$WORK/ferry.log" >&2; return 1
}

# wait_replica FILE POS TIMEOUT_SECONDS
wait_replica() {
  local deadline=$((SECONDS + $3)) file pos
  while ((SECONDS < deadline)); do
    file=$(mariadb -uroot -h127.0.0.1 -P"$(port replica)" -e 'SHOW SLAVE STATUS\G' | awk '/ Relay_Master_Log_File:/ {print $2}')
    pos=$(mariadb -uroot -h127.0.0.1 -P"$(port replica)" -e 'SHOW SLAVE STATUS\G' | awk '/ Exec_Master_Log_Pos:/ {print $2}')
    if [[ -n "$file" && ( "$file" > "$1" || ( "$file" == "$1" && "$pos" -ge "$2" ) ) ]]; then return 0; fi
    sleep 0.1
  done
  log "replica did not reach $1:$2"; mariadb -uroot -h127.0.0.1 -P"$(port replica)" -e 'SHOW SLAVE STATUS\G' >&2; return 1
}

# sample_status FILE: every 0.5 s, "rowsPerSecond lagSeconds lagBytes" from Ferry's status.
sample_status() {
  while sleep 0.5; do
    python3 - "$WORK/status.json" >>"$1" <<'EOF' || true
import json, sys
try:
    s = json.load(open(sys.argv[1])).get("incremental") or {}
    print(s.get("rowsPerSecond", 0), s.get("lagSeconds", 0), s.get("lagBytes", 0))
except Exception:
    pass
EOF
  done
}

# summarize FILE: mean rows/s (non-zero samples), lag seconds p50 p99, lag bytes p50 p99.
summarize() {
  python3 - "$1" <<'EOF'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 3]
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] if v else 0
rates = [r[0] for r in rows if r[0] > 0]
print(int(sum(rates) / len(rates)) if rates else 0, pct([r[1] for r in rows], .5), pct([r[1] for r in rows], .99),
      int(pct([r[2] for r in rows], .5)), int(pct([r[2] for r in rows], .99)))
EOF
}

same_data() {
  local t a b
  for t in $(seq 1 "$TABLES"); do
    a=$(sql target "CHECKSUM TABLE sbtest.sbtest$t" | awk '{print $2}')
    b=$(sql replica "CHECKSUM TABLE sbtest.sbtest$t" | awk '{print $2}')
    [[ "$a" == "$b" ]] || { log "sbtest$t differs: target $a, replica $b"; return 1; }
  done
}
