"""The GPU/CPU worker: one path for a frame, consume -> decode -> batch -> infer -> publish -> commit.

Start reading here:
- app.py           wiring, the consumer loop, start / drain / stop, exit codes, `linewatch-worker`
- frames_input.py  the one interface to the frames topic (poll, pause, commit); inputs.py picks a client
- kafka_input.py   it on kafka-python; steps over records the client cannot parse
- kafka_input_rdkafka.py  it on librdkafka (LW_KAFKA_CONSUMER=confluent, optional)
- records.py       Item / Rejected / ScoredBatch / STOP: what crosses the threads
- decode.py        bytes -> size checked before decoding (imagesize.py) -> model input (thread pool)
- routing.py       recipes in the worker: a frame's route at intake, region crops, masks back onto the frame
- registry.py      the models by reference (LRU-bounded), model_unavailable; the watcher of recipes and aliases
- batching.py      dynamic batches across cameras, one model per batch, fair between models; swap between batches
- engine.py        CPU path and overlapped CUDA path (pinned buffers, streams, events, AMP, buckets)
- serving.py       the served model, its hot reload, fallback when a version will not load
- verdicts.py      a scored batch -> each frame's result, mask, pictures, alert candidate (pure)
- delivery.py      writes acknowledged: retries by error kind, output health; the dead-letter topic
- publisher.py     the publish thread: verdicts -> Redis -> alerts -> acknowledged offsets
- sinks.py         the Redis (one idempotent Lua script per frame, debounce inside) and Kafka adapters
- checkpoint.py    acknowledgements, commit timing, rebalance hand-over, final commit
- offsets.py       the pure "which offset may be committed" rule
- supervision.py   dead threads end the process; output health (transient / refused) and exit codes
- scoring.py, previews.py, drift.py, camera_state.py, metrics.py, settings.py (the alert consumer moved to bridge/alerts_consumer.py)
"""

import os as _os

# OpenMP threads that spin after each parallel region take the CPU the host threads (decode,
# publish) need: let them sleep. Must be set before torch loads its OpenMP runtime.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
