#!/usr/bin/env bash
# Certificates and passwords for docker-compose.secure.yml, made by deploy/local/secrets.sh (the
# same CA and certificate recipe the local secured services and tests use) into
# deploy/compose/.run/secure, which git ignores. Run once from anywhere; reruns keep what exists.
#
# Compose (without swarm) mounts secret files with their host owner and mode, and the containers
# run as users of their own (Kafka 1000, Redis 999, linewatch 10001): the files are made readable,
# and the folder holding them is kept private to you instead.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
export LW_RUN_DIR=$here/.run
secure=$(bash "$repo/deploy/local/secrets.sh" dir)
bash "$repo/deploy/local/secrets.sh" certs
for name in kafka-admin kafka-producer kafka-worker kafka-alerts redis-admin redis-worker redis-reader redis-view; do
  bash "$repo/deploy/local/secrets.sh" password "$name" >/dev/null
done
# Redis starts with this ACL file: no default user, the admin by its password's hash; the
# security-setup service adds the worker, reader and view users.
(umask 077 && "$repo/.venv/bin/python" "$repo/deploy/local/secure_policy.py" --dir "$secure" redis-aclfile >"$secure/redis-users.acl")
chmod 700 "$here/.run" "$secure" "$secure/passwords"
find "$secure" -type f -exec chmod 644 {} +
echo "compose secrets in $secure (folder private to $(id -un)); clients trust $secure/ca.pem"
