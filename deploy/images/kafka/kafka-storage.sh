#!/bin/sh
# The apache/kafka image's /opt/kafka/bin/kafka-storage.sh, for files written for that image
# (deploy/compose/docker-compose.secure.yml formats storage with SCRAM users through it).
exec java -Xmx256m -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties -cp '/opt/kafka/libs/*' \
  kafka.tools.StorageTool "$@"
