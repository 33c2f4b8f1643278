#!/usr/bin/env bash
# Builds a Debian unstable chroot holding MySQL (mysql-server-core, 9.7 in Dec 2026) for the test
# harness (harness/src/mysql.rs), into ${FERRY_CACHE_DIR:-~/.cache/ferry}/mysql-root. MySQL needs a
# newer glibc than Debian 12 has, so it runs unchanged inside this chroot instead of on the host.
# A chroot that is already complete (its marker file exists) is kept, so a second run costs
# nothing; a half-built one is removed and built again.
#
# Needs: root (debootstrap and chroot) and Debian's package mirror (debootstrap's default, or
# $FERRY_DEBIAN_MIRROR). Takes a few minutes and about 800 MB.
set -euo pipefail

CACHE_DIR="${FERRY_CACHE_DIR:-$HOME/.cache/ferry}"
ROOT="${FERRY_MYSQL_ROOT:-$CACHE_DIR/mysql-root}"
MIRROR="${FERRY_DEBIAN_MIRROR:-}"
MARKER="$ROOT/.ferry-complete"

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -f "$MARKER" ] && [ -x "$ROOT/usr/sbin/mysqld" ]; then
  echo "mysql-root: present at $ROOT ($(cat "$MARKER"))"
  exit 0
fi

if ! command -v debootstrap >/dev/null; then
  echo "mysql-root: installing debootstrap"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# A directory without the marker is what an interrupted run left: start it again from scratch.
if [ -e "$ROOT" ]; then
  echo "mysql-root: removing the incomplete $ROOT"
  sudo_if_needed rm -rf --one-file-system "$ROOT"
fi
mkdir -p "$(dirname "$ROOT")"

started=$(date +%s)
echo "mysql-root: debootstrap sid into $ROOT"
sudo_if_needed debootstrap --variant=minbase sid "$ROOT" ${MIRROR:+"$MIRROR"} >/dev/null

in_root() { sudo_if_needed chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }
# The mirror's unstable Release file can be past its validity date.
in_root apt-get -qq -o Acquire::Check-Valid-Until=false update
# Package scripts must not try to start services inside the chroot.
printf '#!/bin/sh\nexit 101\n' | sudo_if_needed tee "$ROOT/usr/sbin/policy-rc.d" >/dev/null
sudo_if_needed chmod +x "$ROOT/usr/sbin/policy-rc.d"
in_root apt-get install -y -qq --no-install-recommends mysql-server-core mysql-client-core >/dev/null
in_root apt-get clean
# mysqld refuses to run as root without --user; the harness runs it as this user.
in_root sh -c 'getent passwd mysql >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin mysql'

version=$(in_root mysqld --version)
echo "$version" | sudo_if_needed tee "$MARKER" >/dev/null
echo "mysql-root: built in $(($(date +%s) - started)) s: $version"
