#!/usr/bin/env bash
# A second Redis, secured, beside the plain one: TLS only (no plaintext port) and ACL users (no
# default user). Same redis-server and start-up logic as redis.sh, which this script drives;
# certificates and passwords come from secrets.sh.
#
#   deploy/local/redis-secure.sh start | stop | status
#
# Port: TLS 127.0.0.1:6380 (LW_REDIS_SECURE_PORT). Users: lw-admin (everything, for set-up) and,
# for the key prefix `lw`, lw-worker, lw-reader, lw-view (deploy/local/secure_policy.py says who
# may do what; tests add users for their own prefixes). Clients trust <secure dir>/ca.pem;
# passwords are in <secure dir>/passwords/redis-<role> (secure dir: `deploy/local/secrets.sh dir`).
# Config and log: <LW_RUN_DIR>/redis-secure. Needs the venv (scripts/setup.sh) for set-up.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${LW_REDIS_SECURE_PORT:-6380}
run_dir=${LW_RUN_DIR:-$repo/.run}/redis-secure
secure=$(bash "$here/secrets.sh" dir)
py=$repo/.venv/bin/python

die() { echo "redis-secure: $*" >&2; exit 1; }

# redis.sh, pointed at this server's port, folder, config and TLS probe.
redis() {
  LW_REDIS_NAME=redis-secure LW_REDIS_PORT=$port LW_REDIS_CONF=$run_dir/secure.conf \
    LW_REDIS_TLS_CA=$secure/ca.pem bash "$here/redis.sh" "$@"
}

start() {
  [[ -x $py ]] || die "the venv is missing: run bash scripts/setup.sh first (users are set with redis-py)"
  bash "$here/secrets.sh" certs
  for role in admin worker reader view; do bash "$here/secrets.sh" password "redis-$role" >/dev/null; done
  mkdir -p "$run_dir"
  local policy=("$py" "$here/secure_policy.py" --dir "$secure" --redis "127.0.0.1:$port")
  (umask 077
   "${policy[@]}" redis-aclfile >"$run_dir/users.acl"
   cat >"$run_dir/secure.conf" <<EOF
tls-cert-file $secure/server.pem
tls-key-file $secure/server.key
tls-ca-cert-file $secure/ca.pem
tls-auth-clients no
aclfile $run_dir/users.acl
EOF
  ) || die "writing the configuration failed"
  redis start
  "${policy[@]}" redis --prefix lw || die "setting the ACL users failed (log: $run_dir/redis.log)"
  echo "redis-secure: clients trust $secure/ca.pem; passwords in $secure/passwords/redis-*"
}

case "${1:-}" in
  start) start ;;
  stop) redis stop ;;
  status) redis status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
