"""linewatch: streaming visual anomaly detection for production lines.

Start reading here:
- linewatch/contract.py   the wire contract: frame headers, alert message, Redis key names
- producer/app.py         cameras -> encode -> Kafka frames topic
- worker/app.py           Kafka -> decode -> batch -> model -> Redis + alert topic -> commit
- model_store/store.py    versioned, hash-checked models the worker loads and hot-swaps
- view/server.py          the live screen (`linewatch-view`); its routes are view/app.py
- programs/               what spans programs: the demo, the list of programs, the README tables
- linewatch/settings.py   connection settings every program shares (LW_* environment variables)
- linewatch/shifts.py     shifts, and the per-camera counts workers keep for them (frames, OK, NG)
- linewatch/startup.py    every program's start-up: environment check, settings, exit 2 when wrong
- deploy/local/           real Kafka and Redis on this machine, without Docker

Layers: this package (what every program imports) < the programs' packages (worker/, producer/,
model_store/, view/) < programs/. Each imports only from its own layer and below, and no modules
import each other in a cycle (tests/test_layers.py).
"""

__version__ = "0.1.0"
