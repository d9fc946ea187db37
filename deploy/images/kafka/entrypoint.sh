#!/bin/sh
# Write server.properties from defaults + KAFKA_* variables, format storage once, exec the broker.
set -eu
conf=/opt/kafka/config/server.properties
data=/var/lib/kafka/data
cat >"$conf" <<PROPS
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
socket.request.max.bytes=104857600
log.retention.hours=24
PROPS
# KAFKA_FOO_BAR=v -> foo.bar=v (later keys win when Java reads properties).
env | sort | while IFS='=' read -r key value; do
  case $key in
    KAFKA_HEAP|KAFKA_OPTS|KAFKA_HEAP_OPTS|KAFKA_JVM_PERFORMANCE_OPTS) continue ;;
    KAFKA_*) prop=$(printf '%s' "${key#KAFKA_}" | tr 'A-Z' 'a-z' | sed 's/___/-/g; s/__/@/g; s/_/./g; s/@/_/g')
             printf '%s=%s\n' "$prop" "$value" >>"$conf" ;;
  esac
done
if ! grep -q '^controller.quorum.voters=' "$conf"; then
  grep -q '^controller.quorum.bootstrap.servers=' "$conf" || echo "controller.quorum.bootstrap.servers=localhost:9093" >>"$conf"
  standalone=--standalone
else
  standalone=
fi
log4j=/opt/kafka/config/log4j2.properties  # console logging (the image's file)
cp='/opt/kafka/libs/*'
if [ ! -f "$data/meta.properties" ]; then
  id=${CLUSTER_ID:-$(python3 -c "import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip('='))")}
  java -Xmx256m -cp "$cp" -Dlog4j2.configurationFile="$log4j" kafka.tools.StorageTool format $standalone \
    "--cluster-id=$id" "--config=$conf"
fi
heap=${KAFKA_HEAP:-512m}
exec java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true ${KAFKA_OPTS:-} \
  -Dlog4j2.configurationFile="$log4j" -cp "$cp" kafka.Kafka "$conf"
