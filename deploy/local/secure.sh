#!/usr/bin/env bash
# Both secured services (kafka-secure.sh, redis-secure.sh) beside the plain ones, and the settings
# a program needs to use them.
#
#   deploy/local/secure.sh start | stop | status
#   deploy/local/secure.sh env ROLE [PREFIX]   LW_* settings for ROLE (producer, worker, alerts,
#                                             reader, view); passwords as *_FILE variables
#
# For example, a worker on the secured services:
#   set -a; . <(bash deploy/local/secure.sh env worker); set +a; .venv/bin/linewatch-worker
# Ports: LW_KAFKA_SECURE_PORT (9094), LW_KAFKA_SECURE_CONTROLLER_PORT (9095), LW_REDIS_SECURE_PORT (6380).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
case "${1:-}" in
  start) bash "$here/redis-secure.sh" start && bash "$here/kafka-secure.sh" start ;;
  stop) bash "$here/kafka-secure.sh" stop; bash "$here/redis-secure.sh" stop ;;
  status) rc=0; bash "$here/kafka-secure.sh" status || rc=$?; bash "$here/redis-secure.sh" status || rc=$?; exit $rc ;;
  env)
    [[ -n ${2:-} ]] || { echo "usage: $0 env ROLE [PREFIX]" >&2; exit 2; }
    exec "$repo/.venv/bin/python" "$here/secure_policy.py" --dir "$(bash "$here/secrets.sh" dir)" \
      --kafka "127.0.0.1:${LW_KAFKA_SECURE_PORT:-9094}" --redis "127.0.0.1:${LW_REDIS_SECURE_PORT:-6380}" \
      env --role "$2" --prefix "${3:-lw}" ;;
  *) echo "usage: $0 start|stop|status|env ROLE [PREFIX]" >&2; exit 2 ;;
esac
