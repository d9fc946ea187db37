#!/usr/bin/env bash
# kcat against the secured broker (kafka-secure.sh) as one of its users, the settings filled in.
#
#   deploy/local/kcat.sh ROLE [kcat arguments]     ROLE: admin, producer, worker, alerts
#   deploy/local/kcat.sh admin -L                   metadata, as the super user
#   echo hi | deploy/local/kcat.sh producer -P -t linewatch.frames -k cam-1
#
# Why a wrapper: librdkafka before 2.6.1 sends a wrong SCRAM client-final-message (it appends its
# own nonce to the server's nonce a second time, librdkafka#4895), which Kafka 4's strict RFC 5802
# check refuses as "invalid credentials" for every user. Debian 12's kcat 1.7.1 links the system
# librdkafka 2.0.2, so it cannot log in to this broker however the password is given. When the
# system librdkafka is older than 2.6.1, this script runs the same kcat on the librdkafka bundled
# with the venv's confluent-kafka (same ABI, newer), which logs in. See docs/security.md.
#
# The password goes into a temporary kcat configuration file (mode 600, removed afterwards), never
# onto a command line where `ps` would show it. Port: LW_KAFKA_SECURE_PORT (9094); passwords and CA
# from `deploy/local/secrets.sh dir`. Needs kcat (`apt-get install kcat`; scripts/kcat.sh does it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${LW_KAFKA_SECURE_PORT:-9094}
secure=$(bash "$here/secrets.sh" dir)

die() { echo "kcat.sh: $*" >&2; exit 2; }

role=${1:-}
[[ $role =~ ^(admin|producer|worker|alerts)$ ]] || die "usage: $0 admin|producer|worker|alerts [kcat arguments]"
shift
command -v kcat >/dev/null || die "kcat is not installed: apt-get install kcat (or bash scripts/kcat.sh)"
password_file=$secure/passwords/kafka-$role
[[ -r $password_file ]] || die "no password for $role in $secure/passwords: start the secured services (deploy/local/secure.sh start)"

# The librdkafka kcat runs on: "2.0.2" from `kcat -V` (Version 1.7.1 (... librdkafka 2.0.2 ...)).
librdkafka_version() { kcat -V 2>/dev/null | sed -n 's/.*librdkafka \([0-9][0-9.]*\).*/\1/p' | head -1; }
older_than() { [[ $1 != "$2" && $(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1) == "$1" ]]; }

system=$(librdkafka_version)
[[ -n $system ]] || die "could not read kcat's librdkafka version from kcat -V"
libdir=
if older_than "$system" 2.6.1; then
  bundled=$(compgen -G "$repo/.venv/lib/python3*/site-packages/confluent_kafka.libs/librdkafka-*.so.1" | head -1 || true)
  [[ -n $bundled ]] || die "kcat links librdkafka $system, which Kafka 4 refuses under SCRAM (fixed in 2.6.1), and the venv has no confluent-kafka to lend a newer one: run scripts/setup.sh, or install librdkafka >= 2.6.1"
  libdir=$(mktemp -d)
  ln -s "$bundled" "$libdir/librdkafka.so.1"  # the name kcat's binary asks the loader for
fi
config=$(mktemp)
trap 'rm -rf "$config" ${libdir:+"$libdir"}' EXIT
user=lw-$role
(umask 077 && printf '%s\n' "bootstrap.servers=127.0.0.1:$port" "security.protocol=SASL_SSL" \
  "sasl.mechanisms=SCRAM-SHA-512" "sasl.username=$user" "sasl.password=$(cat "$password_file")" \
  "ssl.ca.location=$secure/ca.pem" >"$config")
LD_LIBRARY_PATH=${libdir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} kcat -F "$config" "$@"
