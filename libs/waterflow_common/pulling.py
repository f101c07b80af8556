"""A pull consumer that survives NATS restarts: the one fetch loop of every service.

After a server restart an existing nats-py pull subscription can stop receiving (nats.py issue
#504) while the connection itself is fine again. ``Puller`` re-creates the consumer (idempotent)
and the subscription after a reconnect, after repeated fetch errors, when the consumer is gone,
and when the consumer reports pending messages that fetch does not return. The scheduler, the
trigger fires and every agent consumer (a group's, an agent's own) pull through it.
"""

from __future__ import annotations

import asyncio

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from .bus import ensure_consumer
from .log import get_logger

log = get_logger("waterflow.pulling")

STUCK_CHECK_INTERVAL = 15.0
"""Seconds without a message after which the consumer is asked whether it holds pending ones
(a subscription that silently stopped receiving is then re-created)."""


class Puller:
    def __init__(self, js: JetStreamContext, stream: str, config: js_api.ConsumerConfig, source: str | None = None) -> None:
        assert config.durable_name, "Puller needs a durable consumer"
        self.js = js
        self.stream = stream
        self.config = config
        self.source = source or config.durable_name
        """What the consumer is for, in log lines ("group web", "agent web-1", ...)."""
        self._sub: JetStreamContext.PullSubscription | None = None
        self._stale = True
        self._errors = 0
        self._idle = 0.0
        """Seconds spent in empty fetches since a message came (time between fetches, e.g. while
        an agent's slots are busy, does not count)."""

    def reset(self) -> None:
        """Call from the connection's reconnected callback: re-subscribe before the next fetch."""
        self._stale = True

    async def close(self) -> None:
        """Drop the subscription (the durable consumer stays, for the next puller)."""
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass
            self._sub = None

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        await self.close()
        await ensure_consumer(self.js, self.stream, self.config)
        assert self.config.durable_name is not None
        self._sub = await self.js.pull_subscribe_bind(self.config.durable_name, self.stream)
        self._stale = False
        self._errors = 0
        self._idle = 0.0
        log.info("consumer.pulling", source=self.source, stream=self.stream)
        return self._sub

    async def fetch(self, batch: int, timeout: float = 1.0) -> list[Msg]:
        """Up to ``batch`` messages, or [] after ``timeout`` (never raises for NATS trouble).

        Call it only when ``batch`` messages can be taken: an empty fetch while the consumer has
        pending messages is taken as a broken subscription.
        """
        try:
            sub = self._sub if self._sub is not None and not self._stale else await self._subscribe()
            messages = await sub.fetch(batch, timeout=timeout)
            self._errors = 0
            self._idle = 0.0
            return messages
        except asyncio.TimeoutError:
            self._idle += timeout
            await self._check_stuck()
            return []
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._errors += 1
            if self._errors >= 3:
                self._stale = True
            log.warning("fetch.failed", source=self.source, error=str(error) or type(error).__name__)
            await asyncio.sleep(min(0.2 * self._errors, 2.0))
            return []

    async def _check_stuck(self) -> None:
        """After STUCK_CHECK_INTERVAL of empty fetches, re-subscribe if the consumer is gone or
        holds pending messages that are not delivered."""
        if self._idle < STUCK_CHECK_INTERVAL or self._sub is None:
            return
        self._idle = 0.0
        try:
            info = await self._sub.consumer_info()
        except NotFoundError:
            reason = "consumer gone"
        except Exception:
            return
        else:
            if not info.num_pending:
                return
            reason = "messages pending but none delivered"
        log.info("consumer.resubscribe", source=self.source, reason=reason)
        self._stale = True
