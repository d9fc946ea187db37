#!/usr/bin/env bash
# Build every linewatch image with podman on a machine that can pull from no container registry.
#
#   deploy/podman/build.sh            install podman & co. if missing, make the Debian base, build all
#   deploy/podman/build.sh base       only the base image (debootstrap -> podman import, cached)
#   deploy/podman/build.sh images     only the images (the base must exist)
#
# Images (tags used by deploy/compose/docker-compose.yml and the Kubernetes manifests):
#   localhost/linewatch-base:bookworm    Debian bookworm minbase + python3, made with debootstrap
#   linewatch-producer:dev               Dockerfile target producer (also alerts, topics, models)
#   linewatch-view:dev                   Dockerfile target view
#   linewatch-worker:dev-cpu             Dockerfile target cpu-worker (PyPI's torch runs on CPU too)
#   linewatch-kafka:$KAFKA_VERSION       deploy/images/kafka: the jars of deploy/local/kafka.sh + Debian's JRE
#   linewatch-redis:bookworm             deploy/images/redis: Debian's redis-server
#   linewatch-prometheus:bookworm        deploy/images/prometheus: Debian's prometheus
#
# The CUDA `worker` target needs nvidia/cuda from a registry and is not built here.
# Caches (ignored folders): .cache/containers/base-bookworm.tar (the debootstrap root, so a fresh
# podman store imports it in seconds) and .cache/containers/pip (pip's download cache, mounted into
# every build: a rebuild without layers downloads nothing). Timings go to .run/containers/build.json.
#
# Environment: LW_DEBIAN_MIRROR (the host's apt mirror), LW_TORCH_INDEX (https://pypi.org/simple:
# the index the tests' torch comes from), LW_NICE (10: builds share the machine's cores),
# LW_CA_BUNDLE (/etc/ssl/certs/ca-certificates.crt: the CAs pip trusts inside builds).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=$repo/.cache/containers
state=$repo/.run/containers
base_tag=localhost/linewatch-base:bookworm
mirror=${LW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
torch_index=${LW_TORCH_INDEX:-https://pypi.org/simple}
nice_level=${LW_NICE:-10}
ca_bundle=${LW_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
export CONTAINERS_CONF=$here/containers.conf

# One place for the versions every deployment file must agree on (tests/deploy/test_versions.py).
kafka_version() { sed -n 's/^kafka_version=//p' "$repo/deploy/versions.env"; }
torch_version() { sed -n 's/^torch_version=//p' "$repo/deploy/versions.env"; }

log() { printf '[build %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

install_tools() {
  local missing=()
  for tool in podman runc podman-compose debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing ${missing[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc podman-compose debootstrap >/dev/null
}

base() {
  if podman image exists "$base_tag"; then return 0; fi
  mkdir -p "$cache"
  if [[ ! -s $cache/base-bookworm.tar ]]; then
    local root=$state/rootfs
    rm -rf "$root" && mkdir -p "$root"
    log "debootstrap bookworm minbase from $mirror (about a minute, once)"
    nice -n "$nice_level" debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$root" "$mirror" >"$state/debootstrap.log" 2>&1 \
      || { tail -20 "$state/debootstrap.log" >&2; exit 1; }
    # Smaller and reproducible enough: no apt lists or caches in the base.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -cf "$cache/base-bookworm.tar.tmp" . && mv "$cache/base-bookworm.tar.tmp" "$cache/base-bookworm.tar"
    rm -rf "$root"
  fi
  podman import --quiet "$cache/base-bookworm.tar" "$base_tag" >/dev/null
  log "imported $base_tag"
}

# podman build with the host's network (the registries pip and apt use), the pip cache mounted, and
# the host's CA bundle with a pip.conf pointing pip at it: where TLS goes through an inspecting
# proxy, only the host's bundle trusts it (pip in a venv otherwise uses its own certifi bundle).
# The mounts are build-time only: no layer keeps them.
# --format docker: OCI images have no HEALTHCHECK, and the images' health checks must survive.
build() {
  local t0 t1 tag=$1; shift
  t0=$(date +%s.%N)
  nice -n "$nice_level" podman build --network=host --layers --format docker \
    -v "$cache/pip:/root/.cache/pip" -v "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro" \
    -v "$state/pip.conf:/etc/pip.conf:ro" \
    --build-arg "BASE_IMAGE=$base_tag" "$@" -t "$tag" >>"$state/build.log" 2>&1 \
    || { tail -30 "$state/build.log" >&2; log "build of $tag failed (log: $state/build.log)"; exit 1; }
  t1=$(date +%s.%N)
  python3 - "$state/build.json" "$tag" "$t0" "$t1" <<'EOF'
import json, pathlib, subprocess, sys
path, tag, t0, t1 = pathlib.Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
data = json.loads(path.read_text()) if path.exists() else {}
size = subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True, text=True, check=True).stdout.strip()
data.setdefault("images", {})[tag] = {"build_s": round(t1 - t0, 1), "size_bytes": int(size)}
path.write_text(json.dumps(data, indent=2))
EOF
  log "built $tag in $(python3 -c "print(f'{$t1 - $t0:.1f}')")s"
}

kafka_context() {
  local ctx=$state/kafka-context libs=$repo/.cache/kafka/libs
  compgen -G "$libs/kafka_2.13-$(kafka_version).jar" >/dev/null || LW_KAFKA_NAME=kafka bash "$repo/deploy/local/kafka.sh" fetch >&2  # stdout is the context path
  compgen -G "$libs/kafka_2.13-$(kafka_version).jar" >/dev/null \
    || { echo "the jars in $libs are not Kafka $(kafka_version) (deploy/versions.env)" >&2; exit 1; }
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp -r "$repo/deploy/images/kafka/." "$ctx/"
  cp -r "$libs" "$ctx/libs"
  echo "$ctx"
}

images() {
  mkdir -p "$cache/pip" "$state"
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$state/pip.conf"
  : >"$state/build.log"
  local t0; t0=$(date +%s.%N)
  local torch=(--build-arg "TORCH_INDEX=$torch_index" --build-arg "TORCH_VERSION=$(torch_version)")
  build "linewatch-kafka:$(kafka_version)" "$(kafka_context)"
  build linewatch-redis:bookworm "$repo/deploy/images/redis"
  build linewatch-prometheus:bookworm "$repo/deploy/images/prometheus"
  build linewatch-worker:dev-cpu --target cpu-worker "${torch[@]}" -f "$repo/Dockerfile" "$repo"
  build linewatch-producer:dev --target producer "${torch[@]}" -f "$repo/Dockerfile" "$repo"
  build linewatch-view:dev --target view "${torch[@]}" -f "$repo/Dockerfile" "$repo"
  python3 - "$state/build.json" "$t0" "$(date +%s.%N)" <<'EOF'
import json, pathlib, sys
path = pathlib.Path(sys.argv[1])
data = json.loads(path.read_text())
data["total_s"] = round(float(sys.argv[3]) - float(sys.argv[2]), 1)
path.write_text(json.dumps(data, indent=2))
EOF
  log "all images built in $(python3 -c "import json; print(json.load(open('$state/build.json'))['total_s'])")s"
}

mkdir -p "$state"
case "${1:-all}" in
  base) install_tools; base ;;
  images) images ;;
  all) install_tools; rm -f "$state/build.json"; base; images ;;
  *) echo "usage: $0 [all|base|images]" >&2; exit 2 ;;
esac
