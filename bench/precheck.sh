#!/usr/bin/env bash
# Precheck on a source with many tables: starts a throwaway MariaDB source and target, creates
# TABLES tables on the source (in 50 schemas; every 10th without a key, some with foreign keys)
# and half of them with a row on the target, then times `ferry precheck` (RUNS runs; the best
# and the median are printed). Goal: under 10 seconds for 5,000 tables.
#
#   bench/precheck.sh                 # 5,000 tables, release build
#   TABLES=20000 RUNS=5 bench/precheck.sh
#   FERRY=target/debug/ferry bench/precheck.sh
#
# No peer tool is timed: TiDB DM's `dmctl check-task` needs a running DM cluster (dm-master +
# dm-worker), which this script does not build.
set -euo pipefail

TABLES=${TABLES:-5000}
RUNS=${RUNS:-3}
SCHEMAS=50
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/ferry-bench-precheck.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z "${FERRY:-}" ]]; then
    (cd "$ROOT" && cargo build --release -q -p ferry-worker --bin ferry)
    FERRY="${CARGO_TARGET_DIR:-$ROOT/target}/release/ferry"
fi

# shellcheck source=bench/lab.sh
. "$ROOT/bench/lab.sh"

# start NAME ROLE EXTRA_ARGS...: a server started by ferry-lab as the tests start it, in
# $WORK/NAME (its HOST:PORT in $WORK/NAME/address), ready when this returns.
start() {
    local name=$1 role=$2; shift 2
    lab_server mariadb "$WORK/$name" --role "$role" -- --innodb-buffer-pool-size=256M \
        --innodb-flush-log-at-trx-commit=0 "$@" || exit 1
    PIDS+=("$(cat "$WORK/$name/server.pid")")
}

start source source --server-id=1
start target target
SRC_PORT=$(cut -d: -f2 "$WORK/source/address")
DST_PORT=$(cut -d: -f2 "$WORK/target/address")

# The schema: TABLES tables spread over SCHEMAS schemas.
schema_sql() {
    local with_rows=$1 per=$(( (TABLES + SCHEMAS - 1) / SCHEMAS )) n=0
    echo "SET SESSION sql_log_bin = 0;"
    for s in $(seq 1 $SCHEMAS); do
        echo "CREATE DATABASE IF NOT EXISTS bench$s; USE bench$s;"
        echo "CREATE TABLE parent (id INT PRIMARY KEY);"
        for t in $(seq 1 "$per"); do
            n=$((n + 1)); [[ $n -gt $TABLES ]] && break
            [[ $with_rows == 1 && $((n % 2)) == 1 ]] && continue
            local column=id
            if (( n % 10 == 0 )); then
                column=a
                echo "CREATE TABLE t$t (a INT, b VARCHAR(40), c DATETIME);"
            elif (( n % 25 == 1 )); then
                echo "CREATE TABLE t$t (id INT PRIMARY KEY, p INT, v VARCHAR(40), KEY (v), FOREIGN KEY (p) REFERENCES parent (id));"
            else
                echo "CREATE TABLE t$t (id BIGINT PRIMARY KEY, v VARCHAR(40), n DECIMAL(10,2), KEY (v));"
            fi
            if [[ $with_rows == 1 ]]; then echo "INSERT INTO t$t ($column) VALUES (1);"; fi
        done
    done
}
echo "creating $TABLES tables on the source and half of them on the target..." >&2
created=$(date +%s)
schema_sql 0 | mariadb -h127.0.0.1 -P"$SRC_PORT" -uroot
schema_sql 1 | mariadb -h127.0.0.1 -P"$DST_PORT" -uroot
echo "created in $(( $(date +%s) - created )) s" >&2

cat >"$WORK/job.yaml" <<YAML
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: ""}
---
apiVersion: ferry.dev/v1alpha1
kind: MigrationSource
metadata: {name: src}
spec: {type: MariaDB, host: 127.0.0.1, port: $SRC_PORT, user: root, passwordSecretRef: {name: creds, key: password}}
---
apiVersion: ferry.dev/v1alpha1
kind: MigrationJob
metadata: {name: bench}
spec:
  sourceRef: {name: src}
  target: {host: 127.0.0.1, port: $DST_PORT, user: root, passwordSecretRef: {name: creds, key: password}}
  mode: FullAndIncremental
YAML

times=()
for run in $(seq 1 "$RUNS"); do
    started=$(date +%s.%N)
    set +e
    "$FERRY" precheck -f "$WORK/job.yaml" --output json >"$WORK/items.json" 2>"$WORK/stderr"
    code=$?
    set -e
    elapsed=$(echo "$(date +%s.%N) - $started" | bc)
    times+=("$elapsed")
    echo "run $run: ${elapsed}s (exit $code)" >&2
done
python3 - "$WORK/items.json" "${times[@]}" <<'PY'
import json, statistics, sys
items = json.load(open(sys.argv[1]))
times = sorted(float(t) for t in sys.argv[2:])
counts = {r: sum(1 for i in items if i["result"] == r) for r in ("Pass", "Warning", "Failure")}
print(f"precheck, {len(items)} items ({counts}):")
for i in items:
    if i["result"] != "Pass":
        print(f"  {i['result']} {i['name']}: {i.get('observed', '')[:100]}")
print(f"best {times[0]:.2f} s, median {statistics.median(times):.2f} s over {len(times)} runs (goal < 10 s)")
PY
