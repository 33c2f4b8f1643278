#!/usr/bin/env python3
"""Turns `mariadb-binlog --verbose --base64-output=DECODE-ROWS` output into plain SQL, one
statement per row change, transaction by transaction, for replaying a row-format binlog into a
server that cannot run `BINLOG '...'` statements (TiDB parses and ignores them, so the literal
`mariadb-binlog | mariadb` pipeline would apply nothing). This is the single-stream baseline of
bench/catchup-tidb.sh; it knows the sysbench tables only: every table has COLUMNS and the first
one is the primary key.

Usage: mariadb-binlog -v --base64-output=DECODE-ROWS ... | binlog_to_sql.py FROM_DB TO_DB COLUMNS
"""

import re
import sys

FROM_DB, TO_DB, COLUMNS = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
HEADER = re.compile(r"^### (INSERT INTO|DELETE FROM|UPDATE) `([^`]*)`\.`([^`]*)`")
VALUE = re.compile(r"^###   @(\d+)=(.*)$")


def flush(out, row):
    """Writes the statement of one row change: (verb, table, where values, set values)."""
    verb, table, where, values = row
    key = COLUMNS[0]
    if verb == "INSERT INTO":
        out.write(f"INSERT INTO {table} ({','.join(COLUMNS)}) VALUES ({','.join(values)});\n")
    elif verb == "DELETE FROM":
        out.write(f"DELETE FROM {table} WHERE {key}={where[0]};\n")
    else:
        sets = ",".join(f"{c}={v}" for c, v in zip(COLUMNS, values))
        out.write(f"UPDATE {table} SET {sets} WHERE {key}={where[0]};\n")


def main():
    out = sys.stdout
    row = None  # (verb, table, where values, set/insert values)
    target = None  # the list the next @N values go to
    for line in sys.stdin:
        if line.startswith("###"):
            header = HEADER.match(line)
            if header:
                if row:
                    flush(out, row)
                verb, db, table = header.groups()
                db = TO_DB if db == FROM_DB else db
                row = (verb, f"`{db}`.`{table}`", [], [])
                target = row[2] if verb == "DELETE FROM" else row[3]
            elif line.startswith("### WHERE"):
                target = row[2]
            elif line.startswith("### SET"):
                target = row[3]
            else:
                value = VALUE.match(line.rstrip("\n"))
                if value and target is not None:
                    target.append(value.group(2))
            continue
        if row:
            flush(out, row)
            row = None
        if line.startswith(("BEGIN", "START TRANSACTION")):
            out.write("BEGIN;\n")
        elif line.startswith("COMMIT"):
            out.write("COMMIT;\n")
    if row:
        flush(out, row)


main()
