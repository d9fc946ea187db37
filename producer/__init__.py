"""linewatch producer: cameras -> encode -> Kafka frames topic.

Start reading here:
- producer/app.py        ProducerApp (start, drain, stop), main(), produce_synthetic() for tests/demo
- producer/settings.py   ProducerSettings (LW_* variables) and CameraSpec
- producer/capture.py    per-camera capture thread, bounded queues with counted drops, backoff
- producer/sender.py     the thread that sends frames to Kafka and checks every delivery
- producer/sources.py    video files, devices, RTSP/HTTP, image folders, synthetic
- producer/synthetic.py  SyntheticCamera: deterministic part images with injected defects
- producer/metrics.py    Prometheus metrics (linewatch_producer_*)
The wire format itself lives in linewatch/contract.py.
"""
