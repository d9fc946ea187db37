"""The bridge to the line: verdicts and alerts from Kafka to OPC UA, MQTT, signed webhooks.

Start reading here:
- app.py            `linewatch-bridge`: the sinks, one runner each, /metrics /healthz /readyz
- runner.py         one sink's loop: own consumer group, bounded window, retries, commit after ack
- records.py        Envelope (kind, idempotency key camera/frame_id, body), SinkDown / Refused
- sinks/            opcua.py (server for PLCs), opcua_client.py (writes into the PLC's own server),
                    mqtt.py (QoS 1, retained), webhook.py (signed POST), printer.py
- signing.py        webhook HMAC signature and the receiver's `verify` (refuses replays)
- dead_letters.py   <base>.bridge.dlq: refused and unreadable records, with the reason
- settings.py, metrics.py
- alerts_consumer.py  `linewatch-alerts`, the small reference alert consumer (print or POST)
"""
