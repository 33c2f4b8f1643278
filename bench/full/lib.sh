# Shell helpers shared by bench/full-copy*.sh and dev/quickstart.sh: throwaway MariaDB (and TiDB) servers in
# a directory of their own (own datadir, socket and port; root without a password over TCP),
# started by the test harness's `ferry-lab` (bench/lab.sh) as the tests start them. Source this file.

# shellcheck source=bench/lab.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lab.sh"

# create_ferry_user PORT: the user `ferry` (password ferry-pw, every privilege) on the server.
create_ferry_user() {
    mariadb -h127.0.0.1 -P"$1" -uroot -e \
        "CREATE USER ferry@'%' IDENTIFIED BY 'ferry-pw'; GRANT ALL ON *.* TO ferry@'%'"
}

# start_mariadb DIR PORT ROLE [extra mariadbd args...]; ROLE is source (binlog on) or target.
start_mariadb() {
    local dir=$1 port=$2 role=$3
    shift 3
    # MariaDB's own buffer pool and redo log sizes, as these benchmarks always measured with
    # (the tests' servers are smaller).
    TRIES=120 lab_server mariadb "$dir" --port "$port" --role "$role" -- \
        --innodb-buffer-pool-size=128M --innodb-log-file-size=96M "$@" &&
        create_ferry_user "$port"
}

# stop_mariadb DIR: stops the server started in DIR.
stop_mariadb() { stop_lab_server "$1"; }

# write_job FILE SOURCE_PORT TARGET_PORT DATABASE [MODE]: a manifest for `ferry migrate`.
write_job() {
    cat >"$1" <<YAML
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: ferry-pw}
---
apiVersion: ferry.dev/v1alpha1
kind: MigrationSource
metadata: {name: local-source}
spec:
  type: MariaDB
  host: 127.0.0.1
  port: $2
  user: ferry
  passwordSecretRef: {name: creds, key: password}
---
apiVersion: ferry.dev/v1alpha1
kind: MigrationJob
metadata: {name: ${6:-copy}, namespace: default}
spec:
  sourceRef: {name: local-source}
  target:
    host: 127.0.0.1
    port: $3
    user: ferry
    passwordSecretRef: {name: creds, key: password}
  mode: ${5:-Full}
  objects:
    databases: [$4]
YAML
}

# sysbench's oltp tables (TABLES x ROWS, prepared by THREADS) plus a wide table of WIDE_ROWS rows
# with BLOB, JSON, temporal, DECIMAL and DOUBLE columns, in database sbtest of the server on port
# $1; sysbench's log goes to $WORK/sysbench.log.
generate_sbtest() {
    local port=$1
    mariadb -h127.0.0.1 -P"$port" -uroot -e "CREATE DATABASE sbtest"
    sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$port" \
        --mysql-user=root --mysql-db=sbtest --tables="$TABLES" --table-size="$ROWS" \
        --threads="$THREADS" prepare >"$WORK/sysbench.log"
    mariadb -h127.0.0.1 -P"$port" -uroot --default-character-set=utf8mb4 sbtest <<SQL
CREATE TABLE wide (id INT PRIMARY KEY, name VARCHAR(100), payload BLOB, doc JSON,
  created DATETIME(6), amount DECIMAL(20,6), ratio DOUBLE);
INSERT INTO wide
  SELECT seq, CONCAT('name-', seq), RANDOM_BYTES(1024),
         JSON_OBJECT('id', seq, 'tags', JSON_ARRAY('a', 'b', seq % 7), 'text', REPEAT('ü', 200)),
         '2024-01-01 00:00:00' + INTERVAL seq SECOND, seq / 7, seq / 3
  FROM seq_1_to_$WIDE_ROWS;
ANALYZE TABLE wide;
SQL
}

# start_tidb DIR BINARY PORT: a TiDB server on the embedded unistore engine (no PD, no TiKV),
# started by ferry-lab as the tests start it (BINARY is the harness's tidb-server; kept for the
# callers).
start_tidb() {
    local dir=$1 port=$3
    TRIES=240 lab_server tidb "$dir" --port "$port" --status-port-file "$dir/status-port" &&
        create_ferry_user "$port"
}

# stop_tidb DIR: stops the server started in DIR.
stop_tidb() { stop_lab_server "$1"; }
