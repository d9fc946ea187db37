"""linewatch producer: cameras -> encode -> Kafka frames topic.

Start reading here:
- producer/app.py        ProducerApp (start, drain, stop), main(), produce_synthetic() for tests/demo
- producer/settings.py   ProducerSettings (LW_* variables) and CameraSpec
- producer/capture.py    per-camera capture thread, bounded queues with counted drops, backoff
- producer/sender.py     the thread that sends frames to Kafka and checks every delivery
- producer/sources.py    the FrameSource interface; video files, V4L2 devices, image folders, synthetic
- producer/stream.py     RTSP/HTTP/UDP through PyAV: timeouts, TCP/UDP, newest frame only
- producer/genicam.py    GigE Vision / USB3 Vision through Aravis: software trigger, exposure, gain
- producer/trigger.py    POST /trigger?camera=..&part=..: one frame per trigger, its part id as lw-part
- producer/synthetic.py  SyntheticCamera: deterministic part images with injected defects
- producer/metrics.py    Prometheus metrics (linewatch_producer_*)
The wire format itself lives in linewatch/contract.py.
"""
