"""linewatch: streaming visual anomaly detection for production lines.

Start reading here:
- linewatch/contract.py   the wire contract: frame headers, alert message, Redis key names
- producer/app.py         cameras -> encode -> Kafka frames topic
- worker/app.py           Kafka -> decode -> batch -> model -> Redis + alert topic -> commit
- model_store/store.py    versioned, hash-checked models the worker loads and hot-swaps
- linewatch/settings.py   connection settings every program shares (LW_* environment variables)
- linewatch/shifts.py     shifts, and the per-camera counts workers keep for them (frames, OK, NG)
- deploy/local/           real Kafka and Redis on this machine, without Docker
"""

__version__ = "0.1.0"
