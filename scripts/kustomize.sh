#!/usr/bin/env bash
# kustomize 5, built once with Go into .tools/bin (ignored), then run with the arguments given:
#
#   bash scripts/kustomize.sh build deploy/podman/kube
#
# Debian's kubectl (1.20) embeds kustomize 2, which reads neither `labels:` nor components; no
# kustomize binary can be downloaded here, but the Go module proxy serves its source (about 3 min
# to build on two cores, once). The version: deploy/versions.env.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=$(sed -n 's/^kustomize_version=//p' "$repo/deploy/versions.env")
bin=$repo/.tools/bin/kustomize
if [[ ! -x $bin ]] || [[ $("$bin" version 2>/dev/null) != "v$version" ]]; then
  command -v go >/dev/null || { echo "kustomize: needs Go (apt-get install golang, or /usr/local/go/bin on PATH)" >&2; exit 1; }
  echo "kustomize: building v$version with $(go version | awk '{print $3}') into .tools/bin (once)" >&2
  GOBIN=$repo/.tools/bin go install "sigs.k8s.io/kustomize/kustomize/v5@v$version" >&2
fi
exec "$bin" "$@"
