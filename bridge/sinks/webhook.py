"""Webhook sink: POST each record's JSON, signed (bridge/signing.py), with a timeout.

Outcomes: 2xx acknowledged; no answer (refused connection, timeout), 429/502/503/504, or
401/403/404 (our secret or URL is wrong: a setting to fix, not a bad record): the receiver is
down, the window is held and retried without limit; any other status: the receiver
refused this record, retried up to LW_WEBHOOK_MAX_ATTEMPTS, then sent to the dead-letter topic
with the status and the start of the answer as the reason.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from bridge.records import Envelope, Refused, SinkDown
from bridge.settings import BridgeSettings
from bridge.signing import H_KEY, H_KIND, H_SIGNATURE, H_TIMESTAMP, sign
from linewatch.errors import ConfigError

_DOWN_STATUSES = {401, 403, 404, 429, 502, 503, 504}


class WebhookSink:
    name = "webhook"

    def __init__(self, s: BridgeSettings) -> None:
        if not s.webhook_url or s.webhook_secret is None:
            raise ConfigError("the webhook sink needs LW_WEBHOOK_URL and LW_WEBHOOK_SECRET")
        self.url, self.timeout_s = s.webhook_url, s.webhook_timeout_s
        self.secret = s.webhook_secret.get_secret_value().encode()
        self.pool = ThreadPoolExecutor(s.webhook_concurrency, thread_name_prefix="webhook")

    def start(self) -> None:
        pass

    def state(self) -> tuple[bool, str]:
        return True, ""  # no standing connection: the runner reports failed deliveries

    def _post(self, env: Envelope) -> None | SinkDown | Refused:
        ts = int(time.time())
        request = urllib.request.Request(self.url, data=env.body, method="POST", headers={
            "Content-Type": "application/json", H_TIMESTAMP: str(ts), H_SIGNATURE: sign(self.secret, ts, env.body),
            H_KEY: env.key, H_KIND: env.kind,
        })
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                answer.read(1024)
            return None
        except urllib.error.HTTPError as exc:
            text = exc.read(200).decode("utf-8", "replace") if exc.fp else ""
            if exc.code in _DOWN_STATUSES:
                return SinkDown(f"webhook: {self.url} answered {exc.code}")
            return Refused(f"HTTP {exc.code}: {text}")
        except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out, DNS: nobody took it
            return SinkDown(f"webhook: {self.url} unreachable: {getattr(exc, 'reason', exc)}")

    def deliver(self, batch: list[Envelope]) -> list[None | SinkDown | Refused]:
        return list(self.pool.map(self._post, batch))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
