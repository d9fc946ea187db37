"""Who may do what on the secured local services (kafka-secure.sh, redis-secure.sh start them).

Kafka (SASL_SSL, SCRAM-SHA-512). `lw-admin` is the super user, made when the storage is formatted;
the others are made here, and each topic base gets its ACLs (nothing is allowed without one):

    lw-producer  WRITE, DESCRIBE     topic <base>.frames
    lw-worker    READ, DESCRIBE      topic <base>.frames, group <worker group>
                 WRITE, DESCRIBE     topics <base>.alerts, <base>.frames.dlq
    lw-alerts    READ, DESCRIBE      topic <base>.alerts, group <alerts group>

Redis (TLS), per key prefix P; the `default` user is off and `lw-admin` may do everything:

    P-worker     every command but @dangerous, on keys P:* only
    P-reader     @read commands on keys P:*
    P-view       @read commands on keys P:*, and XADD to P:feedback only (the live view's feedback)

Passwords are files made by secrets.sh (<secure dir>/passwords/kafka-<role>, redis-<role>).

    python deploy/local/secure_policy.py kafka --base linewatch [--worker-group G] [--alerts-group G]
    python deploy/local/secure_policy.py redis --prefix lw
    python deploy/local/secure_policy.py env --role worker [--prefix lw]   LW_* settings of a role
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import redis
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

ADMIN = "lw-admin"
KAFKA_USERS = {"producer": "lw-producer", "worker": "lw-worker", "alerts": "lw-alerts"}
REDIS_ROLES = ("worker", "reader", "view")
ROLES = ("producer", "worker", "alerts", "reader", "view")
DEFAULT_WORKER_GROUP = "linewatch-workers"  # WorkerSettings.group_id's default
DEFAULT_ALERTS_GROUP = "linewatch-alert-printer"  # AlertConsumerSettings.alerts_group_id's default


@dataclass(frozen=True)
class Secured:
    """Where the secured services listen and where their CA and passwords are."""

    dir: Path
    kafka: str = "127.0.0.1:9094"
    redis: str = "127.0.0.1:6380"
    kafka_controller: str = "127.0.0.1:9095"

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    def password_file(self, service: str, role: str) -> Path:
        return self.dir / "passwords" / f"{service}-{role}"

    def password(self, service: str, role: str) -> str:
        return self.password_file(service, role).read_text().strip()

    def env(self, role: str, prefix: str = "lw") -> dict[str, str]:
        """The LW_* settings of a program running as `role`: passwords as *_FILE variables, the
        way a secret mount gives them; Redis user and prefix for key prefix `prefix`."""
        if role not in ROLES:
            raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
        env: dict[str, str] = {}
        if role in KAFKA_USERS:
            env |= {
                "LW_KAFKA_BOOTSTRAP": self.kafka, "LW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "LW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "LW_KAFKA_SASL_USERNAME": KAFKA_USERS[role],
                "LW_KAFKA_SASL_PASSWORD_FILE": str(self.password_file("kafka", role)), "LW_KAFKA_SSL_CAFILE": str(self.ca),
            }
        if role in REDIS_ROLES:
            env |= {
                "LW_REDIS_URL": f"rediss://{self.redis}/0", "LW_REDIS_USERNAME": redis_user(prefix, role),
                "LW_REDIS_PASSWORD_FILE": str(self.password_file("redis", role)), "LW_REDIS_SSL_CA_CERTS": str(self.ca),
                "LW_REDIS_PREFIX": prefix,
            }
        return env

    # -- Kafka ---------------------------------------------------------------------------------
    def kafka_admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(
            bootstrap_servers=self.kafka, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username=ADMIN, sasl_plain_password=self.password("kafka", "admin"),
            ssl_cafile=str(self.ca), client_id="lw-secure-policy",
        )

    def kafka_users(self, admin: KafkaAdminClient) -> None:
        """Create or update the SCRAM credentials of the producer, worker and alert consumer."""
        upserts = [
            UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_512, self.password("kafka", role))
            for role, user in KAFKA_USERS.items()
        ]
        failed = {user: error for user, error in admin.alter_user_scram_credentials(upserts).items() if error}
        if failed:
            raise RuntimeError(f"SCRAM users not set: {failed}")

    # -- Redis ---------------------------------------------------------------------------------
    def redis_admin(self) -> redis.Redis:
        host, port = self.redis.rsplit(":", 1)
        return redis.Redis(
            host=host, port=int(port), ssl=True, ssl_ca_certs=str(self.ca), username=ADMIN,
            password=self.password("redis", "admin"), socket_timeout=5,
        )


def kafka_acls(base: str, worker_group: str = DEFAULT_WORKER_GROUP, alerts_group: str = DEFAULT_ALERTS_GROUP) -> list[ACL]:
    """The ACLs of one topic base (linewatch.contract.Topics names the topics the same way)."""
    frames, alerts, dead_letter = f"{base}.frames", f"{base}.alerts", f"{base}.frames.dlq"
    grants = [
        ("producer", ResourceType.TOPIC, frames, (ACLOperation.WRITE, ACLOperation.DESCRIBE)),
        ("worker", ResourceType.TOPIC, frames, (ACLOperation.READ, ACLOperation.DESCRIBE)),
        ("worker", ResourceType.GROUP, worker_group, (ACLOperation.READ,)),
        ("worker", ResourceType.TOPIC, alerts, (ACLOperation.WRITE, ACLOperation.DESCRIBE)),
        ("worker", ResourceType.TOPIC, dead_letter, (ACLOperation.WRITE, ACLOperation.DESCRIBE)),
        ("alerts", ResourceType.TOPIC, alerts, (ACLOperation.READ, ACLOperation.DESCRIBE)),
        ("alerts", ResourceType.GROUP, alerts_group, (ACLOperation.READ,)),
    ]
    return [
        ACL(f"User:{KAFKA_USERS[role]}", "*", op, ACLPermissionType.ALLOW, ResourcePattern(kind, name))
        for role, kind, name, ops in grants
        for op in ops
    ]


def grant_kafka(admin: KafkaAdminClient, acls: list[ACL]) -> None:
    result = admin.create_acls(acls)
    if result["failed"]:
        raise RuntimeError(f"ACLs not created: {result['failed']}")


def revoke_kafka(admin: KafkaAdminClient, acls: list[ACL]) -> None:
    filters = [
        ACLFilter(
            a.principal, a.host, a.operation, a.permission_type,
            ResourcePatternFilter(a.resource_pattern.resource_type, a.resource_pattern.resource_name, ACLResourcePatternType.LITERAL),
        )
        for a in acls
    ]
    errors = [str(error) for _, _, error in admin.delete_acls(filters) if error is not None and error.errno]
    if errors:
        raise RuntimeError(f"ACLs not deleted: {errors}")


def redis_user(prefix: str, role: str) -> str:
    return f"{prefix}-{role}"


def redis_rules(prefix: str) -> dict[str, list[str]]:
    """ACL SETUSER rules (passwords apart) for the users of key prefix `prefix`."""
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", prefix):
        raise ValueError(f"prefix {prefix!r}: letters, digits and _.:- only (no glob characters)")
    keys = f"{prefix}:*"
    return {
        redis_user(prefix, "worker"): [f"~{keys}", "resetchannels", "+@all", "-@dangerous"],
        redis_user(prefix, "reader"): [f"%R~{keys}", "resetchannels", "+@read", "+@connection", "-@dangerous"],
        redis_user(prefix, "view"): [
            f"%R~{keys}", f"%RW~{prefix}:feedback", "resetchannels", "+@read", "+@connection", "+xadd", "-@dangerous",
        ],
    }


def grant_redis(secured: Secured, client: redis.Redis, prefix: str) -> None:
    """Create (or reset) the prefix's users; each role's password is its file's."""
    for user, rules in redis_rules(prefix).items():
        role = user.rsplit("-", 1)[1]
        # reset: a rerun with changed rules leaves nothing of the old ones behind.
        client.execute_command("ACL", "SETUSER", user, "reset", "on", f">{secured.password('redis', role)}", *rules)


def revoke_redis(client: redis.Redis, prefix: str) -> None:
    client.execute_command("ACL", "DELUSER", *redis_rules(prefix))


def redis_admin_aclfile(password: str) -> str:
    """The ACL file Redis starts with: no default user, an admin known by its password's hash."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    return f"user default off resetkeys -@all\nuser {ADMIN} on #{digest} ~* &* +@all\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="the secure folder (secrets.sh dir)")
    parser.add_argument("--kafka", default="127.0.0.1:9094", help="the SASL_SSL listener")
    parser.add_argument("--redis", default="127.0.0.1:6380", help="the TLS port")
    sub = parser.add_subparsers(dest="what", required=True)
    k = sub.add_parser("kafka", help="SCRAM users, then the ACLs of one topic base")
    k.add_argument("--base", default="linewatch")
    k.add_argument("--worker-group", default=DEFAULT_WORKER_GROUP)
    k.add_argument("--alerts-group", default=DEFAULT_ALERTS_GROUP)
    r = sub.add_parser("redis", help="the users of one key prefix")
    r.add_argument("--prefix", default="lw")
    sub.add_parser("redis-aclfile", help="print the ACL file Redis starts with")
    e = sub.add_parser("env", help="print the LW_* settings of a program running as ROLE")
    e.add_argument("--role", required=True, choices=ROLES)
    e.add_argument("--prefix", default="lw")
    args = parser.parse_args(argv)
    secured = Secured(args.dir, args.kafka, args.redis)
    if args.what == "kafka":
        admin = secured.kafka_admin()
        try:
            secured.kafka_users(admin)
            grant_kafka(admin, kafka_acls(args.base, args.worker_group, args.alerts_group))
        finally:
            admin.close()
        print(f"kafka-secure: users {', '.join(KAFKA_USERS.values())}; ACLs for topics {args.base}.*")
    elif args.what == "redis":
        client = secured.redis_admin()
        try:
            grant_redis(secured, client, args.prefix)
        finally:
            client.close()
        print(f"redis-secure: users {', '.join(redis_rules(args.prefix))} for keys {args.prefix}:*")
    elif args.what == "env":
        sys.stdout.write("".join(f"{k}={v}\n" for k, v in secured.env(args.role, args.prefix).items()))
    else:
        sys.stdout.write(redis_admin_aclfile(secured.password("redis", "admin")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
