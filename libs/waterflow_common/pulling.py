"""A pull consumer that survives NATS restarts.

After a server restart an existing nats-py pull subscription can stop receiving (nats.py issue
#504) while the connection itself is fine again. ``Puller`` re-creates the consumer (idempotent)
and the subscription after a reconnect and after repeated fetch errors, so a service keeps
working through an outage without being restarted.
"""

from __future__ import annotations

import asyncio

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api

from .bus import ensure_consumer
from .log import get_logger

log = get_logger("waterflow.pulling")


class Puller:
    def __init__(self, js: JetStreamContext, stream: str, config: js_api.ConsumerConfig) -> None:
        assert config.durable_name, "Puller needs a durable consumer"
        self.js = js
        self.stream = stream
        self.config = config
        self._sub: JetStreamContext.PullSubscription | None = None
        self._stale = True
        self._errors = 0

    def reset(self) -> None:
        """Call from the connection's reconnected callback: re-subscribe before the next fetch."""
        self._stale = True

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass
            self._sub = None
        await ensure_consumer(self.js, self.stream, self.config)
        assert self.config.durable_name is not None
        self._sub = await self.js.pull_subscribe_bind(self.config.durable_name, self.stream)
        self._stale = False
        self._errors = 0
        return self._sub

    async def fetch(self, batch: int, timeout: float = 1.0) -> list[Msg]:
        """Up to ``batch`` messages, or [] after ``timeout`` (never raises for NATS trouble)."""
        try:
            sub = self._sub if self._sub is not None and not self._stale else await self._subscribe()
            messages = await sub.fetch(batch, timeout=timeout)
            self._errors = 0
            return messages
        except asyncio.TimeoutError:
            return []
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._errors += 1
            if self._errors >= 3:
                self._stale = True
            log.warning("fetch.failed", consumer=self.config.durable_name, error=str(error) or type(error).__name__)
            await asyncio.sleep(min(0.2 * self._errors, 2.0))
            return []
