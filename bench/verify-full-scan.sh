#!/usr/bin/env bash
# The full-scan comparison `bench/verify.sh` measures `ferry verify` against: every table of a
# database read whole from both servers in key order (THREADS tables at once) and compared byte
# for byte, as one would with `mysqldump` of both sides and `diff`, minus the dump's formatting.
# Exit 0 when every table is the same, 1 otherwise.
#
# Usage: bench/verify-full-scan.sh SOURCE_PORT TARGET_PORT DATABASE [THREADS]
set -euo pipefail
SPORT=$1 TPORT=$2 DB=$3 THREADS=${4:-4}
export SPORT TPORT DB
tables=$(mariadb -h127.0.0.1 -P"$SPORT" -uroot -N -e "SELECT TABLE_NAME FROM \
    information_schema.TABLES WHERE TABLE_SCHEMA = '$DB' AND TABLE_TYPE = 'BASE TABLE'")
compare_table() {
    local t=$1 order
    order=$(mariadb -h127.0.0.1 -P"$SPORT" -uroot -N -e "SELECT IFNULL(GROUP_CONCAT( \
        CONCAT('\`', COLUMN_NAME, '\`') ORDER BY SEQ_IN_INDEX), '1') FROM information_schema.STATISTICS \
        WHERE TABLE_SCHEMA = '$DB' AND TABLE_NAME = '$t' AND INDEX_NAME = 'PRIMARY'")
    local sql="SELECT * FROM \`$DB\`.\`$t\` ORDER BY $order"
    if ! cmp -s <(mariadb -h127.0.0.1 -P"$SPORT" -uroot -N --quick -e "$sql") \
        <(mariadb -h127.0.0.1 -P"$TPORT" -uroot -N --quick -e "$sql"); then
        echo "table $DB.$t differs"
        return 1
    fi
}
export -f compare_table
echo "$tables" | xargs -P "$THREADS" -I{} bash -c 'compare_table "$@"' _ {}
