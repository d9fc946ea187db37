"""The factory of the worker's frames input: a FramesInput (worker/frames_input.py) on the client
the settings name (WorkerSettings.kafka_consumer)."""

from __future__ import annotations

from typing import Any

from linewatch.errors import ConfigError
from worker.frames_input import FramesInput


def open_frames_input(client: str, topic: str, client_kwargs: dict[str, Any], consumer_kwargs: dict[str, Any]) -> FramesInput:
    """The frames topic's consumer for `client` (WorkerSettings.kafka_consumer)."""
    if client == "confluent":
        try:
            from worker.kafka_input_rdkafka import RdkafkaFramesInput
        except ImportError as exc:
            raise ConfigError("LW_KAFKA_CONSUMER=confluent needs confluent-kafka "
                              f"(pip install 'linewatch[rdkafka]'): {exc}") from exc
        return RdkafkaFramesInput(topic, client_kwargs, consumer_kwargs)
    from worker.kafka_input import KafkaPythonInput

    return KafkaPythonInput(topic, client_kwargs, consumer_kwargs)
