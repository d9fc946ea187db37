#!/bin/sh
# The apache/kafka image's /opt/kafka/bin/kafka-server-start.sh: the broker on a given config file.
heap=${KAFKA_HEAP:-512m}
exec java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true ${KAFKA_OPTS:-} \
  -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties -cp '/opt/kafka/libs/*' kafka.Kafka "$@"
