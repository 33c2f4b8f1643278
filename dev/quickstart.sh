#!/usr/bin/env bash
# Ferry in one command: installs MariaDB if missing, starts a throwaway source (with a sample
# shop database) and target in a temporary directory, runs `ferry migrate` (Full mode) from
# source to target with progress, and shows both sides side by side. Nothing outside the
# temporary directory is touched; the servers stop when the script ends (KEEP=1 keeps them).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/full/lib.sh

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v mariadb-install-db >/dev/null || ! command -v mariadb >/dev/null; then
    echo "quickstart: installing mariadb-server and mariadb-client"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        apt-get install -y -qq mariadb-server mariadb-client >/dev/null
fi
if ! command -v cargo >/dev/null; then
    echo "quickstart: Rust is missing; install it with rustup (https://rustup.rs) and run this again" >&2
    exit 1
fi

echo "quickstart: building ferry"
cargo build -q -p ferry-worker --bin ferry
FERRY=${CARGO_TARGET_DIR:-$PWD/target}/debug/ferry

WORK=$(mktemp -d /tmp/ferry-quickstart.XXXXXX)
if [ "${KEEP:-0}" != 1 ]; then
    trap 'stop_mariadb "$WORK/source"; stop_mariadb "$WORK/target"; rm -rf "$WORK"' EXIT
fi
SPORT=$(free_port)
TPORT=$(free_port)
echo "quickstart: starting a MariaDB source on :$SPORT and a MariaDB target on :$TPORT"
start_mariadb "$WORK/source" "$SPORT" source
start_mariadb "$WORK/target" "$TPORT" target
src() { mariadb -h127.0.0.1 -P"$SPORT" -uroot --default-character-set=utf8mb4 "$@"; }
dst() { mariadb -h127.0.0.1 -P"$TPORT" -uroot --default-character-set=utf8mb4 "$@"; }

echo "quickstart: loading the sample database 'shop' into the source"
src <<'SQL'
CREATE DATABASE shop CHARACTER SET utf8mb4;
USE shop;
CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL,
  email VARCHAR(200) NOT NULL UNIQUE, country CHAR(2), created_at TIMESTAMP(3) NOT NULL);
CREATE TABLE products (sku VARCHAR(20) PRIMARY KEY, title VARCHAR(200) NOT NULL,
  price DECIMAL(10,2) NOT NULL, attributes JSON, image BLOB);
CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL,
  sku VARCHAR(20) NOT NULL, quantity SMALLINT UNSIGNED NOT NULL, placed DATETIME(6) NOT NULL,
  status ENUM('new','paid','shipped','returned') NOT NULL,
  FOREIGN KEY (customer_id) REFERENCES customers (id), FOREIGN KEY (sku) REFERENCES products (sku));
INSERT INTO customers (name, email, country, created_at)
  SELECT CONCAT('Customer ', seq, IF(seq % 5 = 0, ' Müller 😀', '')), CONCAT('c', seq, '@example.com'),
         ELT(1 + seq % 4, 'DE', 'FR', 'JP', 'US'), '2020-01-01' + INTERVAL seq MINUTE
  FROM seq_1_to_20000;
INSERT INTO products
  SELECT CONCAT('SKU-', LPAD(seq, 5, '0')), CONCAT('Product ', seq), seq * 1.25,
         JSON_OBJECT('color', ELT(1 + seq % 3, 'red', 'green', 'blue'), 'size', seq % 10),
         RANDOM_BYTES(64)
  FROM seq_1_to_2000;
INSERT INTO orders (customer_id, sku, quantity, placed, status)
  SELECT 1 + seq % 20000, CONCAT('SKU-', LPAD(1 + seq % 2000, 5, '0')), 1 + seq % 5,
         '2023-01-01' + INTERVAL seq SECOND, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'returned')
  FROM seq_1_to_200000;
CREATE VIEW revenue_by_country AS
  SELECT c.country, SUM(o.quantity * p.price) AS revenue
  FROM orders o JOIN customers c ON c.id = o.customer_id JOIN products p ON p.sku = o.sku
  GROUP BY c.country;
ANALYZE TABLE customers, products, orders;
SQL

write_job "$WORK/job.yaml" "$SPORT" "$TPORT" shop Full quickstart
echo "quickstart: the job manifest ($WORK/job.yaml):"
sed 's/^/    /' "$WORK/job.yaml"
echo
echo "quickstart: ferry migrate -f $WORK/job.yaml --status-file $WORK/status.json"
"$FERRY" migrate -f "$WORK/job.yaml" --status-file "$WORK/status.json"

echo
echo "quickstart: the result (rows and CHECKSUM TABLE on each side)"
DIFFERENT=0
for t in customers products orders; do
    s=$(src -N -e "SELECT COUNT(*) FROM shop.$t; CHECKSUM TABLE shop.$t" | awk 'NR==1{c=$1} NR==2{print c, $2}')
    d=$(dst -N -e "SELECT COUNT(*) FROM shop.$t; CHECKSUM TABLE shop.$t" | awk 'NR==1{c=$1} NR==2{print c, $2}')
    mark=same
    if [ -z "$s" ] || [ "$s" != "$d" ]; then mark=DIFFERENT; DIFFERENT=1; fi
    printf '    %-10s source: %-22s target: %-22s %s\n' "$t" "$s" "$d" "$mark"
done
echo "    view revenue_by_country on the target:"
dst -t -e "SELECT * FROM shop.revenue_by_country ORDER BY country" | sed 's/^/    /'
echo "quickstart: status the MigrationJob would report ($WORK/status.json):"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("    stage", s.get("stage"), "phase", s.get("phase"), "full", json.dumps(s.get("full")))' "$WORK/status.json"
if [ "${KEEP:-0}" = 1 ]; then
    echo "quickstart: servers kept: source 127.0.0.1:$SPORT, target 127.0.0.1:$TPORT (user ferry, password ferry-pw); data in $WORK"
fi
if [ "$DIFFERENT" = 1 ]; then
    echo "quickstart: the target differs from the source (see DIFFERENT above)" >&2
    exit 1
fi
