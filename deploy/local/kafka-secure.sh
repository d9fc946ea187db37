#!/usr/bin/env bash
# A second Kafka broker, secured, beside the plain one: a SASL_SSL listener (SCRAM-SHA-512) with
# ACLs (StandardAuthorizer: nothing is allowed without an ACL). Same jars and start-up logic as
# kafka.sh, which this script drives; certificates and passwords come from secrets.sh.
#
#   deploy/local/kafka-secure.sh start | stop | status
#
# Listener: SASL_SSL 127.0.0.1:9094 (LW_KAFKA_SECURE_PORT); controller 9095
# (LW_KAFKA_SECURE_CONTROLLER_PORT), TLS with client certificates: only the broker itself, holding
# the server key, may talk to it. Users: lw-admin (super user, for set-up), lw-producer,
# lw-worker, lw-alerts, with ACLs for the topic base `linewatch` (deploy/local/secure_policy.py says
# who may do what; tests add ACLs for their own topics). Clients trust <secure dir>/ca.pem; passwords
# are in <secure dir>/passwords/kafka-<role> (secure dir: `deploy/local/secrets.sh dir`).
# Data, config and logs: <LW_RUN_DIR>/kafka-secure. Needs the venv (scripts/setup.sh) for set-up.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${LW_KAFKA_SECURE_PORT:-9094}
cport=${LW_KAFKA_SECURE_CONTROLLER_PORT:-9095}
run_dir=${LW_RUN_DIR:-$repo/.run}/kafka-secure
secure=$(bash "$here/secrets.sh" dir)
py=$repo/.venv/bin/python

die() { echo "kafka-secure: $*" >&2; exit 1; }

# kafka.sh, pointed at this broker's ports, folder and TLS probe.
kafka() {
  LW_KAFKA_NAME=kafka-secure LW_KAFKA_PORT=$port LW_KAFKA_CONTROLLER_PORT=$cport \
    LW_KAFKA_PROBE_CAFILE=$secure/ca.pem LW_KAFKA_HEAP=${LW_KAFKA_HEAP:-384m} \
    LW_KAFKA_CONFIG_EXTRA=$run_dir/secure.properties LW_KAFKA_FORMAT_ARGS_FILE=$run_dir/scram.args \
    bash "$here/kafka.sh" "$@"
}

write_config() {
  local admin_pw=$1
  (umask 077
  # The broker's own password is read from its file when the broker starts (DirectoryConfigProvider),
  # so the configuration holds none; deploy/compose/kafka/secure.properties does the same.
  cat >"$run_dir/secure.properties" <<EOF
listeners=SASL_SSL://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=SASL_SSL://127.0.0.1:$port
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
config.providers=dir
config.providers.dir.class=org.apache.kafka.common.config.provider.DirectoryConfigProvider
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="lw-admin" password="\${dir:$secure/passwords:kafka-admin}";
ssl.keystore.type=PEM
ssl.keystore.location=$secure/server-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$secure/ca.pem
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:lw-admin;User:CN=linewatch-broker
EOF
  # SCRAM in KRaft lives in the metadata log: the admin is written there when storage is formatted.
  printf '%s\n' --add-scram "SCRAM-SHA-512=[name=lw-admin,password=$admin_pw]" >"$run_dir/scram.args")
}

start() {
  [[ -x $py ]] || die "the venv is missing: run bash scripts/setup.sh first (users and ACLs are set with kafka-python)"
  bash "$here/secrets.sh" certs
  local admin_file; admin_file=$(bash "$here/secrets.sh" password kafka-admin)
  for role in producer worker alerts; do bash "$here/secrets.sh" password "kafka-$role" >/dev/null; done
  mkdir -p "$run_dir"
  if [[ ! -f $run_dir/data/meta.properties ]]; then
    sha256sum "$admin_file" >"$run_dir/admin.sha256"  # the password the storage is formatted with
  elif ! sha256sum --status -c "$run_dir/admin.sha256" 2>/dev/null; then
    die "the storage in $run_dir/data was formatted with another admin password; remove $run_dir to start afresh"
  fi
  write_config "$(cat "$admin_file")"
  kafka start
  "$py" "$here/secure_policy.py" --dir "$secure" --kafka "127.0.0.1:$port" kafka --base linewatch \
    || die "setting users and ACLs failed (broker log: $run_dir/server.log)"
  echo "kafka-secure: clients trust $secure/ca.pem; passwords in $secure/passwords/kafka-*"
}

case "${1:-}" in
  start) start ;;
  stop) kafka stop ;;
  status) kafka status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
