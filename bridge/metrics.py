"""The bridge's Prometheus metrics (one registry per process, labelled by sink)."""

from prometheus_client import Counter, Gauge, Histogram

DELIVERED = Counter("linewatch_bridge_delivered_total", "Records a sink acknowledged.", ["sink", "kind"])
FAILURES = Counter("linewatch_bridge_failures_total", "Failed delivery attempts (down: held and retried; refused: counts toward the budget).", ["sink", "kind"])
DEAD_LETTERED = Counter("linewatch_bridge_dead_lettered_total", "Records sent to the bridge's dead-letter topic.", ["sink", "reason"])
SINK_UP = Gauge("linewatch_bridge_sink_up", "1 while the sink takes records, 0 while it is down.", ["sink"])
INFLIGHT = Gauge("linewatch_bridge_inflight", "Records polled and not yet acknowledged by the sink.", ["sink"])
COMMITTED = Counter("linewatch_bridge_commits_total", "Offset commits after a window was acknowledged.", ["sink"])
LATENCY = Histogram(
    "linewatch_bridge_capture_to_ack_seconds", "Capture time to the sink's acknowledgement (plausible clocks only).", ["sink"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LOGINS_REFUSED = Counter("linewatch_bridge_opcua_logins_refused_total", "OPC UA sessions refused for a wrong user or password.")
PLC_CONNECTS = Counter("linewatch_bridge_opcua_client_connects_total", "Connection attempts of the opcua_client sink to the PLC's server, by outcome (connected, failed).", ["outcome"])
