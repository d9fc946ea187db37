#!/usr/bin/env bash
# Start, stop or check both local services: deploy/local/services.sh start|stop|status
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case "${1:-}" in
  start) bash "$here/redis.sh" start && bash "$here/kafka.sh" start ;;
  stop) bash "$here/kafka.sh" stop; bash "$here/redis.sh" stop ;;
  status) rc=0; bash "$here/kafka.sh" status || rc=$?; bash "$here/redis.sh" status || rc=$?; exit $rc ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
