# Shell helpers shared by bench/full-copy*.sh and dev/quickstart.sh: throwaway MariaDB (and TiDB) servers in
# a directory of their own (own datadir, socket and port; root without a password over TCP),
# the way the test harness (e2e/src/mariadb.rs) starts them. Source this file.

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to TRIES half-seconds for the server on PORT to answer, then creates the `ferry` user;
# else prints the last lines of its LOGS and fails. Usage: await_server PORT TRIES WHAT LOGS...
await_server() {
    local port=$1 tries=$2 what=$3
    shift 3
    for _ in $(seq 1 "$tries"); do
        if mariadb -h127.0.0.1 -P"$port" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
            mariadb -h127.0.0.1 -P"$port" -uroot -e \
                "CREATE USER ferry@'%' IDENTIFIED BY 'ferry-pw'; GRANT ALL ON *.* TO ferry@'%'"
            return 0
        fi
        sleep 0.5
    done
    echo "$what did not start; its log:" >&2
    tail -20 "$@" >&2
    return 1
}

# start_mariadb DIR PORT ROLE [extra mariadbd args...]; ROLE is source (binlog on) or target.
start_mariadb() {
    local dir=$1 port=$2 role=$3
    shift 3
    mkdir -p "$dir/data" "$dir/binlog"
    mariadb-install-db --no-defaults --datadir="$dir/data" --user=root \
        --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 || {
        cat "$dir/install.log" >&2
        return 1
    }
    local role_args=(--skip-log-bin)
    if [ "$role" = source ]; then
        role_args=(--log-bin="$dir/binlog/mysql-bin" --server-id="$port" --binlog-format=ROW
            --binlog-row-image=FULL)
    fi
    /usr/sbin/mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/mysqld.sock" \
        --pid-file="$dir/mysqld.pid" --port="$port" --bind-address=127.0.0.1 --user=root \
        --skip-name-resolve --innodb-flush-log-at-trx-commit=2 --max-connections=500 \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
        --secure-file-priv="" --log-error="$dir/error.log" "${role_args[@]}" "$@" \
        >"$dir/stdout.log" 2>&1 &
    echo $! >"$dir/server.pid"
    await_server "$port" 120 "MariaDB in $dir" "$dir/error.log"
}

# stop_mariadb DIR: stops the server started in DIR.
stop_mariadb() {
    local pid
    pid=$(cat "$1/server.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

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

# start_tidb DIR BINARY PORT: a TiDB server on the embedded unistore engine (no PD, no TiKV), the
# way the test harness (e2e/src/tidb.rs) starts it; its status port is written to DIR/status-port.
start_tidb() {
    local dir=$1 binary=$2 port=$3 status
    status=$(free_port)
    mkdir -p "$dir/tmp"
    echo "$status" >"$dir/status-port"
    cat >"$dir/tidb.toml" <<TOML
tmp-storage-path = "$dir/tmp"
[log]
slow-query-file = "$dir/slow.log"
[log.file]
filename = "$dir/tidb.log"
[performance]
force-init-stats = false
TOML
    "$binary" -store unistore -path "$dir/data" -host 127.0.0.1 -P "$port" \
        -status "$status" -status-host 127.0.0.1 -socket "$dir/tidb.sock" \
        -config "$dir/tidb.toml" -L warn >"$dir/stderr.log" 2>&1 &
    echo $! >"$dir/server.pid"
    await_server "$port" 240 "TiDB in $dir" "$dir/tidb.log" "$dir/stderr.log"
}

# stop_tidb DIR: stops the server started in DIR.
stop_tidb() { stop_mariadb "$1"; }
