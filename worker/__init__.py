"""The GPU/CPU worker: one path for a frame, consume -> decode -> batch -> infer -> publish -> commit.

Start reading here:
- app.py        wiring, the consumer loop, start / drain / stop, `linewatch-worker`
- decode.py     bytes -> checked, resized model input (thread pool)
- batching.py   dynamic batches across cameras; model swap between batches
- engine.py     CPU path and overlapped CUDA path (pinned buffers, streams, events, AMP, buckets)
- serving.py    the served model and its hot reload from the model store
- publisher.py  verdicts, masks, debounced alerts; Redis + Kafka; offsets acknowledged after both
- publish.py    the Redis (idempotent Lua) and Kafka adapters
- offsets.py    the pure "which offset may be committed" rule
- scoring.py, debounce.py, metrics.py, health.py, settings.py, alerts_consumer.py
"""
