#!/usr/bin/env bash
# Ferry's end-to-end suite on a kind cluster, for CI wherever Docker runs (GitHub Actions:
# .github/workflows/kind-e2e.yaml). It creates the cluster, builds the ferry and operator images
# and loads them, installs the Helm chart, runs MariaDB (source) and TiDB (target) in the
# cluster, then runs the same test the harness's control plane runs
# (operator/tests/it/operator_e2e.rs, `example_migration_end_to_end`): the example job reaches the
# Incremental stage, rows written to the source arrive, pause, resume, restart, delete.
#
#   harness/kind/run.sh            # KEEP_CLUSTER=1 keeps the cluster afterwards
#
# Needs docker, kind, kubectl, helm and cargo on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER="${CLUSTER:-ferry-harness}"
TAG="${TAG:-e2e}"
work="$(mktemp -d)"
forwards=()

cleanup() {
  for pid in "${forwards[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ "${KEEP_CLUSTER:-0}" != 1 ]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

for tool in docker kind kubectl helm cargo; do
  command -v "$tool" >/dev/null || { echo "kind suite: $tool is not on PATH" >&2; exit 1; }
done

echo "== cluster"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --config harness/kind/cluster.yaml --wait 120s
kind get kubeconfig --name "$CLUSTER" > "$work/kubeconfig"
export KUBECONFIG="$work/kubeconfig"

echo "== images"
cargo build --release --locked --bin ferry --bin ferry-operator
IMAGE_ENGINE=docker bash dev/build-image.sh ferry target/release/ferry "localhost/ferry:$TAG"
IMAGE_ENGINE=docker bash dev/build-image.sh operator target/release/ferry-operator "localhost/ferry-operator:$TAG"
kind load docker-image --name "$CLUSTER" "localhost/ferry:$TAG" "localhost/ferry-operator:$TAG"

echo "== databases"
kubectl apply -f harness/kind/databases.yaml
kubectl -n ferry-harness-db rollout status deployment/mariadb --timeout=300s
kubectl -n ferry-harness-db rollout status deployment/tidb --timeout=300s

echo "== ferry (Helm chart)"
# harness/tests/it/kind_suite.rs renders the chart with exactly these --set values and validates the
# result, so a renamed value fails there before it fails here.
helm upgrade --install ferry charts/ferry --namespace ferry-system --create-namespace --wait --timeout 300s \
  --set image.repository=localhost/ferry-operator --set "image.tag=$TAG" \
  --set worker.image.repository=localhost/ferry --set "worker.image.tag=$TAG"

# The test reaches the databases through port-forwards; pods use the Services.
forward() { # service local-port remote-port
  kubectl -n ferry-harness-db port-forward "service/$1" "$2:$3" >"$work/forward-$1.log" 2>&1 &
  forwards+=("$!")
  for _ in $(seq 60); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 1
  done
  echo "kind suite: port-forward to $1 did not open" >&2; cat "$work/forward-$1.log" >&2; exit 1
}
forward mariadb 13306 3306
forward tidb 14000 4000

echo "== test"
export FERRY_E2E_KUBECONFIG="$KUBECONFIG"
export FERRY_E2E_SOURCE_URL="mysql://root:root-pw@127.0.0.1:13306"
export FERRY_E2E_SOURCE_ADDRESS="mariadb.ferry-harness-db.svc:3306"
export FERRY_E2E_TARGET_URL="mysql://root@127.0.0.1:14000"
export FERRY_E2E_TARGET_KIND=tidb
export FERRY_E2E_TARGET_ADDRESS="tidb.ferry-harness-db.svc:4000"
cargo test --locked -p ferry-operator --test it -- --exact operator_e2e::example_migration_end_to_end --nocapture
echo "kind suite: passed"
