#!/usr/bin/env bash
# Builds sync-diff-inspector, the peer of bench/verify.sh, from the Go module proxy and prints the
# binary's path. The proxy lists one version of github.com/pingcap/tidb-tools, v5.0.3+incompatible,
# whose go.mod is shipped as go.mod1, so the Go tool would take the newest of every dependency
# (which no longer build together): a throwaway module requires exactly the versions that go.mod1
# names. TiDB of that time reaches runtime.buildVersion through go:linkname, which Go 1.23 and
# later refuse unless -checklinkname=0. About 10 minutes on 2 cores; the result is cached.
#
# Usage: bench/verify-build-sync-diff.sh [OUT_DIR]   (default ~/.cache/ferry/bench/sync-diff)
set -euo pipefail
OUT=${1:-$HOME/.cache/ferry/bench/sync-diff}
BIN=$OUT/sync_diff_inspector
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
mkdir -p "$OUT"
cd "$OUT"
export GOFLAGS=-mod=mod
VERSION=v5.0.3+incompatible
go mod download -json "github.com/pingcap/tidb-tools@$VERSION" >download.json
DIR=$(python3 -c 'import json; print(json.load(open("download.json"))["Dir"])')
{
    printf 'module ferry-bench-sync-diff\n\ngo 1.16\n\n'
    sed -n '/^require (/,/^)/p' "$DIR/go.mod1" \
        | sed "s#^)#\tgithub.com/pingcap/tidb-tools $VERSION\n)#"
    grep '^replace' "$DIR/go.mod1" || true
} >go.mod
go build -ldflags=-checklinkname=0 -o "$BIN" github.com/pingcap/tidb-tools/sync_diff_inspector >&2
echo "$BIN"
