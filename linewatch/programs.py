"""The programs linewatch ships and the settings class of each (the layer above the packages).

One list, read by the README's settings tables (linewatch/settings_doc.py) and by every
program's start-up check of the environment: a variable any linewatch program reads is accepted
by all of them, so one environment file can serve the whole line; anything else is a typo.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings


def program_classes() -> dict[str, type[BaseSettings]]:
    # Imported here: the programs import linewatch's base modules, not the other way round.
    from linewatch.demo import DemoSettings
    from model_store.settings import ModelsSettings
    from producer.settings import ProducerSettings
    from view.settings import ViewSettings
    from bridge.alerts_consumer import AlertConsumerSettings
    from bridge.settings import BridgeSettings
    from worker.settings import WorkerSettings

    return {
        "linewatch-worker": WorkerSettings,
        "linewatch-producer": ProducerSettings,
        "linewatch-alerts": AlertConsumerSettings,
        "linewatch-bridge": BridgeSettings,
        "linewatch-demo": DemoSettings,
        "linewatch-models": ModelsSettings,
        "linewatch-view": ViewSettings,
    }


def check_program_environment() -> None:
    """ConfigError for an LW_* variable that no linewatch program reads."""
    from linewatch.settings import check_environment

    check_environment(*program_classes().values())
