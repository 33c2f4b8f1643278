#!/usr/bin/env bash
# The project's test command: formatting, lints, then every test of every crate (the tests start
# their own MariaDB, TiDB and Kubernetes servers). Run dev/setup.sh once before on a new machine.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
