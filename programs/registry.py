"""The programs linewatch ships and the settings class of each.

One list, read by the README's settings tables and by the list of every LW_* variable a program
reads (programs/settings_doc.py writes both), which each program's start-up check uses
(linewatch/startup.py): a variable any linewatch program reads is accepted by all of them, so one
environment file can serve the whole line; anything else is a typo.
"""

from __future__ import annotations

from linewatch.settings import BaseProgramSettings
from model_store.settings import ModelsSettings
from producer.settings import ProducerSettings
from programs.demo import DemoSettings
from view.settings import ViewSettings
from bridge.alerts_consumer import AlertConsumerSettings
from bridge.settings import BridgeSettings
from worker.settings import WorkerSettings


def program_classes() -> dict[str, type[BaseProgramSettings]]:
    """Program name -> its settings class, in the README's order."""
    return {
        "linewatch-worker": WorkerSettings,
        "linewatch-producer": ProducerSettings,
        "linewatch-alerts": AlertConsumerSettings,
        "linewatch-bridge": BridgeSettings,
        "linewatch-demo": DemoSettings,
        "linewatch-models": ModelsSettings,
        "linewatch-view": ViewSettings,
    }
