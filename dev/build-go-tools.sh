#!/usr/bin/env bash
# Builds the Go programs the test harness runs as real processes, from the Go module proxy:
#   tidb-server                                  (github.com/pingcap/tidb/cmd/tidb-server)
#   kube-apiserver, kube-controller-manager      (k8s.io/kubernetes/cmd/...)
#   kubectl                                      (for people using ferry-lab; tests use kube-rs)
#   gh-ost                                       (github.com/github/gh-ost/go/cmd/gh-ost: the
#                                                 online schema-change tests run it for real)
# into ${FERRY_CACHE_DIR:-~/.cache/ferry}/bin/<name>-<version>. A binary that is already there
# is not built again, so a second run costs nothing.
#
# Usage: dev/build-go-tools.sh [tidb|kube|promtool|gh-ost|lightning|all]   (default: all; lightning,
# TiDB Lightning for bench/full-copy.sh's TiDB peer, is built only when asked for)
#
# Needs: network access to the Go module proxy, curl, unzip, sed and sha256sum. No Go: the Go
# toolchain itself comes from the module proxy (golang.org/toolchain) into the cache. Each
# module's source is unpacked into a temporary directory outside the repository and built there
# as the main module, with the replace lines the upstream go.mod needs rewritten to module
# versions (upstream points some of them at nested directories that a module zip leaves out).
set -euo pipefail

# --- versions ---------------------------------------------------------------------------------
# TiDB: a tidb module pseudo-version plus the parser module it is built with (upstream builds the
# parser from the nested ./pkg/parser module, which the module zip leaves out). Every module the
# pair needs must be served by the module proxy; the proxy used here serves only versions it has
# cached, which rules out, for example, the v1.1.0-beta.0.20260625145450-3e4ee9fc99e7 master
# commit (its parser, kvproto, tipb and client-go versions are refused with 403). This pair is the
# one another public project pins for the v8.5.6 release commit, and all of its requirements are
# served.
TIDB_VERSION="v1.1.0-beta.0.20260413061245-ae18096e0237"
TIDB_PARSER_VERSION="v0.0.0-20260331085336-4e0b702f38a8"
# What `SELECT VERSION()` reports after "8.0.11-TiDB-" (upstream's Makefile puts `git describe`
# there).
TIDB_RELEASE_VERSION="v8.5.6"
# The Go that builds everything: the module golang.org/toolchain on the module proxy, so the
# machine needs no Go of its own. TiDB needs exactly its own Go minor (pkg/util/hack checks the
# map ABI at start-up and panics when built by go1.26); its go.mod names go1.25.8. As the
# checksum database may be unreachable, the linux-amd64 zip is checked against this SHA-256.
GO_TOOLCHAIN="go1.25.8"
GO_TOOLCHAIN_SHA256="8e788d62e01f4f22037f2d59c751a08b4fa5ca9c1baab8f1caee8612bc3e46d1"
# Kubernetes: k8s.io/kubernetes vX.Y.Z, whose staging modules are published as v0.Y.Z.
KUBE_VERSION="v1.34.4"
# promtool (tests the alert rules with Prometheus's own rule engine): the Go module version of
# Prometheus v3, which needs Go 1.26.
PROMETHEUS_VERSION="v0.316.0"
PROMTOOL_GO_TOOLCHAIN="go1.26.8"
PROMTOOL_GO_TOOLCHAIN_SHA256="30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7"
# gh-ost: the newest release the module proxy serves (v1.1.7 and the v1.1.5 and earlier tags are
# refused with 403). Built with TiDB's Go. v1.1.6 runs neither against MySQL 8.4 and later (it
# reads SHOW SLAVE STATUS and SHOW MASTER STATUS, which they removed) nor against MariaDB 10.11
# (its connections set transaction_isolation, a variable MariaDB has only from 11.1 on): the
# binary is built with that one connection option spelled tx_isolation, MariaDB's older name,
# and named gh-ost-<version>-mariadb. The tests run it against MariaDB 10.11.
GH_OST_VERSION="v1.1.6"

CACHE_DIR="${FERRY_CACHE_DIR:-$HOME/.cache/ferry}"
BIN_DIR="$CACHE_DIR/bin"
# The module proxy: the first URL of $GOPROXY, else Go's default.
PROXY="${GOPROXY:-https://proxy.golang.org}"
PROXY="${PROXY%%[,|]*}"
[[ "$PROXY" == http* ]] || PROXY="https://proxy.golang.org"
mkdir -p "$BIN_DIR"

export GOFLAGS="-trimpath -mod=mod"
# k8s.io/kubernetes ships a go.work; build each module on its own.
export GOWORK=off
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
# The checksum database is not reachable from every machine that can reach the proxy; module
# hashes are still checked against the go.sum shipped in the upstream module wherever it
# lists them.
export GOSUMDB="${GOSUMDB:-off}"
export CGO_ENABLED="${CGO_ENABLED:-0}"

log() { echo "build-go-tools: $*" >&2; }

# Temporary directories to remove however the script ends.
CLEANUP=()
cleanup() { if ((${#CLEANUP[@]})); then rm -rf "${CLEANUP[@]}"; fi; }
trap cleanup EXIT

# fetch_module <module path> <version> <dest dir>: downloads the module zip from the proxy and
# unpacks it into <dest dir> (writable, unlike the Go module cache).
fetch_module() {
    local mod="$1" ver="$2" dest="$3" zip
    zip="$(mktemp --suffix=.zip)"
    # Module paths are case-encoded in proxy URLs (upper case -> !lower); ours are lower case.
    log "downloading $mod@$ver"
    curl -fsSL --retry 3 -o "$zip" "$PROXY/$mod/@v/$ver.zip"
    local unz
    unz="$(mktemp -d)"
    CLEANUP+=("$zip" "$unz")
    unzip -q "$zip" -d "$unz"
    rm -f "$zip"
    mv "$unz/$mod@$ver" "$dest"
    rm -rf "$unz"
    chmod -R u+w "$dest"
}

# go_toolchain <goX.Y.Z> <sha256>: path of that Go's `go` command, unpacked once into the cache
# from golang.org/toolchain on the module proxy.
go_toolchain() {
    local ver="$1" sum="$2" arch
    case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
    local mod="golang.org/toolchain@v0.0.1-$ver.linux-$arch"
    local root="$CACHE_DIR/go/$ver"
    if [[ ! -x "$root/bin/go" ]]; then
        log "downloading Go $ver"
        local zip unz
        zip="$(mktemp --suffix=.zip)"
        curl -fsSL --retry 3 -o "$zip" "$PROXY/golang.org/toolchain/@v/v0.0.1-$ver.linux-$arch.zip"
        if [[ "$arch" == amd64 ]] && ! echo "$sum  $zip" | sha256sum -c --quiet; then
            echo "build-go-tools: $mod does not match its pinned SHA-256" >&2
            rm -f "$zip"
            exit 1
        fi
        unz="$(mktemp -d)"
        unzip -q "$zip" -d "$unz"
        rm -f "$zip"
        chmod -R u+w "$unz"
        chmod +x "$unz/$mod/bin/"* "$unz/$mod/pkg/tool/"*/*
        mkdir -p "$(dirname "$root")"
        rm -rf "$root"
        mv "$unz/$mod" "$root"
        rm -rf "$unz"
    fi
    echo "$root/bin/go"
}

report() {
    local name="$1" out="$2" start="$3"
    local secs=$(( $(date +%s) - start ))
    log "built $name in ${secs}s: $out ($(du -h "$out" | cut -f1))"
}

# build_tidb_cmd <name>: one command of the tidb module (tidb-server, or tidb-lightning for the
# benchmarks' peer), built with the same module versions and flags.
build_tidb_cmd() {
    local name="$1" cmd="$2"
    local out="$BIN_DIR/$name-$TIDB_VERSION"
    if [[ -x "$out" ]]; then log "$name present: $out"; return 0; fi
    GO="$(go_toolchain "$GO_TOOLCHAIN" "$GO_TOOLCHAIN_SHA256")"
    local start work
    start=$(date +%s)
    work="$(mktemp -d -t ferry-tidb-build.XXXXXX)"
    CLEANUP+=("$work")
    fetch_module github.com/pingcap/tidb "$TIDB_VERSION" "$work/tidb"
    cd "$work/tidb"
    # Upstream replaces the parser with ./pkg/parser, a nested module the zip leaves out.
    GOTOOLCHAIN=local "$GO" mod edit -dropreplace github.com/pingcap/tidb/pkg/parser \
        -require "github.com/pingcap/tidb/pkg/parser@$TIDB_PARSER_VERSION"
    local vpkg=github.com/pingcap/tidb/pkg/util/versioninfo
    log "building $name (this takes a long time on few cores)"
    GOTOOLCHAIN=local nice -n 5 "$GO" build \
        -ldflags "-s -w -X 'github.com/pingcap/tidb/pkg/parser/mysql.TiDBReleaseVersion=$TIDB_RELEASE_VERSION' -X '$vpkg.TiDBGitHash=${TIDB_VERSION##*-}' -X '$vpkg.TiDBEdition=Community'" \
        -o "$out.tmp" "$cmd"
    mv "$out.tmp" "$out"
    cd /
    rm -rf "$work"
    report "$name" "$out" "$start"
}

build_tidb() { build_tidb_cmd tidb-server ./cmd/tidb-server; }
build_lightning() { build_tidb_cmd tidb-lightning ./lightning/cmd/tidb-lightning; }

build_kube() {
    local apiserver="$BIN_DIR/kube-apiserver-$KUBE_VERSION"
    local kcm="$BIN_DIR/kube-controller-manager-$KUBE_VERSION"
    local kubectl="$BIN_DIR/kubectl-$KUBE_VERSION"
    if [[ -x "$apiserver" && -x "$kcm" && -x "$kubectl" ]]; then
        log "kube binaries present: $apiserver $kcm $kubectl"
        return 0
    fi
    GO="$(go_toolchain "$GO_TOOLCHAIN" "$GO_TOOLCHAIN_SHA256")"
    local start work
    start=$(date +%s)
    work="$(mktemp -d -t ferry-kube-build.XXXXXX)"
    CLEANUP+=("$work")
    fetch_module k8s.io/kubernetes "$KUBE_VERSION" "$work/kubernetes"
    cd "$work/kubernetes"
    # Upstream maps every k8s.io/* staging module to ./staging/src/k8s.io/<name>, which the module
    # zip leaves out; map each to its published v0.Y.Z release instead.
    local staging_ver="v0.${KUBE_VERSION#v1.}"
    local mods
    mods="$(sed -nE 's#^[[:space:]]*(k8s\.io/[^[:space:]]+) => \./staging/.*#\1#p' go.mod)"
    local args=()
    for m in $mods; do
        args+=(-replace "$m=$m@$staging_ver" -require "$m@$staging_ver")
    done
    GOTOOLCHAIN=local "$GO" mod edit "${args[@]}"
    local vpkg=k8s.io/component-base/version
    local ld="-s -w -X '$vpkg.gitVersion=$KUBE_VERSION' -X '$vpkg.gitMajor=1' -X '$vpkg.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)' -X '$vpkg.gitTreeState=clean' -X '$vpkg.buildDate=1970-01-01T00:00:00Z'"
    ld="$ld -X 'k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION'"
    local name out t
    for name in kube-apiserver kube-controller-manager kubectl; do
        out="$BIN_DIR/$name-$KUBE_VERSION"
        [[ -x "$out" ]] && continue
        t=$(date +%s)
        log "building $name"
        GOTOOLCHAIN=local nice -n 5 "$GO" build -ldflags "$ld" -o "$out.tmp" "./cmd/$name"
        mv "$out.tmp" "$out"
        report "$name" "$out" "$t"
    done
    log "kube build total: $(( $(date +%s) - start ))s"
    cd /
    rm -rf "$work"
}

build_promtool() {
    local out="$BIN_DIR/promtool-$PROMETHEUS_VERSION"
    if [[ -x "$out" ]]; then log "promtool present: $out"; return 0; fi
    GO="$(go_toolchain "$PROMTOOL_GO_TOOLCHAIN" "$PROMTOOL_GO_TOOLCHAIN_SHA256")"
    local start gobin
    start=$(date +%s)
    gobin="$(mktemp -d -t ferry-promtool.XXXXXX)"
    CLEANUP+=("$gobin")
    log "building promtool"
    GOTOOLCHAIN=local GOFLAGS=-trimpath GOBIN="$gobin" nice -n 5 "$GO" install -ldflags "-s -w" \
        "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
    mv "$gobin/promtool" "$out"
    report promtool "$out" "$start"
}

# gh-ost from its module zip, built as the main module (`go install mod@version` would ask the
# proxy for the version list, which it refuses).
build_gh_ost() {
    local out="$BIN_DIR/gh-ost-$GH_OST_VERSION-mariadb"
    if [[ -x "$out" ]]; then log "gh-ost present: $out"; return 0; fi
    GO="$(go_toolchain "$GO_TOOLCHAIN" "$GO_TOOLCHAIN_SHA256")"
    local start work
    start=$(date +%s)
    work="$(mktemp -d -t ferry-gh-ost-build.XXXXXX)"
    CLEANUP+=("$work")
    fetch_module github.com/github/gh-ost "$GH_OST_VERSION" "$work/gh-ost"
    cd "$work/gh-ost"
    sed -i 's/"transaction_isolation=%q"/"tx_isolation=%q"/' go/mysql/connection.go
    grep -q '"tx_isolation=%q"' go/mysql/connection.go || {
        echo "build-go-tools: gh-ost's connection options moved; update the MariaDB patch" >&2
        exit 1
    }
    log "building gh-ost"
    GOTOOLCHAIN=local nice -n 5 "$GO" build -ldflags "-s -w -X main.AppVersion=$GH_OST_VERSION" \
        -o "$out.tmp" ./go/cmd/gh-ost
    mv "$out.tmp" "$out"
    cd /
    rm -rf "$work"
    report gh-ost "$out" "$start"
}

# All work happens in main, so editing this file while it runs cannot change what runs.
main() {
    case "${1:-all}" in
        tidb) build_tidb ;;
        kube) build_kube ;;
        promtool) build_promtool ;;
        gh-ost) build_gh_ost ;;
        lightning) build_lightning ;;
        all) build_tidb; build_kube; build_promtool; build_gh_ost ;;
        *) echo "usage: $0 [tidb|kube|promtool|gh-ost|lightning|all]" >&2; exit 2 ;;
    esac
}
main "$@"; exit  # on one line: bash has read all it runs before main starts
