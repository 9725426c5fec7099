# -*- test-case-name: tests.channels.lorawan.test_channel -*-
"""ChirpStack's MQTT integration: subscribe to the broker and feed every event to the hub.

ChirpStack v4 publishes each event as JSON on
``application/<application id>/device/<dev eui>/event/<event>`` (QoS 0).
:class:`MqttSubscriber` subscribes to topic filters (default: every event
of every application), takes the event name from the topic's last level
and calls :meth:`channels.lorawan.hub.UplinkHub.chirpstack`.

It runs on asyncio with aiomqtt: Twisted's asyncio reactor and aiomqtt
share the one loop of the process (DESIGN rule 1), so the hub, the
channels and the tag table are only ever called from that loop's thread.
A refused message is counted and logged (at most one warning per
``log_every`` seconds); a lost broker is reconnected with exponential
backoff.  Nothing the broker sends can stop the subscriber.

Runtime use (on the asyncio reactor, the loop running or about to)::

    subscriber = MqttSubscriber(hub, "127.0.0.1", 1883, reactor=reactor)
    subscriber.start(loop)                # schedules the task; returns at once
    ...
    yield subscriber.stop()               # a Deferred; or ``await subscriber.aclose()`` in asyncio code
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Iterable

from channels.lorawan.aio import cancel_and_wait, event_loop, stop_task
from channels.lorawan.uplink import UplinkError

log = logging.getLogger(__name__)

#: Every event of every ChirpStack application.
DEFAULT_TOPIC = "application/+/device/+/event/+"
#: Event name used when a topic does not end in ``…/event/<name>``.
DEFAULT_EVENT = "up"


def topic_event(topic: str) -> str:
    """Return the ChirpStack event a topic carries (``…/event/<name>``), else :data:`DEFAULT_EVENT`."""
    levels = topic.split("/")
    if len(levels) >= 2 and levels[-2] == "event" and levels[-1]:
        return levels[-1]
    return DEFAULT_EVENT


class MqttSubscriber:
    """Subscribe to ChirpStack events on an MQTT broker and hand them to an :class:`UplinkHub`.

    ``reactor`` (optional) is only read for timestamps in :meth:`health`
    and for log rate limiting; without it the wall clock is used.
    """

    def __init__(self, hub: Any, broker_host: str, port: int = 1883, topics: str | Iterable[str] | None = None,
                 username: str | None = None, password: str | None = None, client_id: str | None = None, *,
                 reactor: Any = None, keepalive: int = 30, backoff_initial: float = 1.0,
                 backoff_max: float = 60.0, log_every: float = 60.0, rng: random.Random | None = None) -> None:
        """Prepare the subscriber; nothing connects before :meth:`start`."""
        self.hub = hub
        self.host = broker_host
        self.port = int(port)
        if topics is None:
            topics = [DEFAULT_TOPIC]
        elif isinstance(topics, str):
            topics = [topics]
        self.topics = list(topics)
        self.username = username
        self.password = password
        self.client_id = client_id
        self.keepalive = keepalive
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.log_every = log_every
        self._reactor = reactor
        self._rng = rng or random.Random()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.connected = False
        #: Called once, with no arguments, when the first subscription is in place.
        self.on_first_subscribe: list = []
        self.connects = 0
        self.connect_failures = 0
        self.messages = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_message: float | None = None
        self._last_log: float | None = None
        self._suppressed = 0

    @property
    def broker(self) -> str:
        """Return the broker as ``host:port``."""
        return f"{self.host}:{self.port}"

    def _now(self) -> float:
        return self._reactor.seconds() if self._reactor is not None else time.time()

    # ------------------------------------------------------------- lifecycle

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Schedule the subscriber's task on ``loop`` (default: the running loop, else the current one).

        Returns at once; the connection is made once the loop runs.
        """
        if self.running:
            return
        loop = event_loop(loop)
        self._stopping = False
        self._task = loop.create_task(self._run(), name=f"mqtt-subscriber {self.broker}")

    def stop(self):
        """Disconnect and end the task; return a Twisted ``Deferred`` that fires when it has ended.

        Safe to call at any time, twice, or before :meth:`start`.  From
        asyncio code, ``await aclose()`` instead.
        """
        self._stopping = True
        d = stop_task(self._task)
        d.addBoth(self._forget_task)
        return d

    def _forget_task(self, result):
        self._task = None
        return result

    async def aclose(self) -> None:
        """Disconnect and wait for the task to end (the asyncio twin of :meth:`stop`)."""
        self._stopping = True
        await cancel_and_wait(self._task)
        self._task = None

    @property
    def running(self) -> bool:
        """Tell whether the subscriber's task is alive (connected or waiting to reconnect)."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        """Connect, subscribe, take messages; on any failure wait and connect again."""
        import aiomqtt

        delay = self.backoff_initial
        while not self._stopping:
            try:
                async with aiomqtt.Client(self.host, self.port, username=self.username, password=self.password,
                                          identifier=self.client_id, keepalive=self.keepalive) as client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=0)
                    self.connected = True
                    self.connects += 1
                    delay = self.backoff_initial
                    log.info("MQTT: connected to %s, subscribed to %s", self.broker, ", ".join(self.topics))
                    waiting, self.on_first_subscribe = self.on_first_subscribe, []
                    for callback in waiting:
                        callback()
                    async for message in client.messages:
                        self.handle(message.topic.value, message.payload)
            except asyncio.CancelledError:
                raise
            except aiomqtt.MqttError as exc:
                self._connection_failed(f"broker {self.broker}: {exc}")
            except Exception as exc:  # noqa: BLE001 - the subscriber must outlive any bug downstream
                log.exception("MQTT subscriber: unexpected error")
                self._connection_failed(f"broker {self.broker}: {type(exc).__name__}: {exc}")
            finally:
                if self.connected:
                    log.info("MQTT: disconnected from %s", self.broker)
                self.connected = False
            if self._stopping:
                break
            # Jitter keeps many sites (or a restarted broker's clients) from
            # reconnecting in lock step.
            await asyncio.sleep(delay * self._rng.uniform(0.8, 1.2))
            delay = min(self.backoff_max, delay * 2)

    def _connection_failed(self, message: str) -> None:
        self.connect_failures += 1
        self.last_error = message
        self._log_limited(f"MQTT: {message}; reconnecting")

    # -------------------------------------------------------------- messages

    def handle(self, topic: str, payload: bytes | bytearray | str | None) -> dict | None:
        """Hand one message to the hub; count and log a refusal.  Never raises.

        Returns the hub's answer, or ``None`` when the message was refused.
        """
        self.messages += 1
        self.last_message = self._now()
        if payload is None:
            body = b""
        elif isinstance(payload, str):
            body = payload.encode("utf-8")
        elif isinstance(payload, (bytes, bytearray)):
            body = bytes(payload)
        else:
            # paho hands bytes; aiomqtt types allow numbers for what it publishes.
            body = str(payload).encode("utf-8")
        try:
            return self.hub.chirpstack(body, topic_event(topic))
        except UplinkError as exc:
            self._refused(f"{topic}: {exc.message} (status {exc.status})")
        except Exception as exc:  # noqa: BLE001 - a bad message must not end the subscription
            log.exception("MQTT: message on %s not handled", topic)
            self._refused(f"{topic}: {type(exc).__name__}: {exc}")
        return None

    def _refused(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        self._log_limited(f"MQTT: message refused: {message}")

    def _log_limited(self, message: str) -> None:
        """Log a warning, at most one per ``log_every`` seconds; say how many were left out."""
        now = self._now()
        if self._last_log is not None and now - self._last_log < self.log_every:
            self._suppressed += 1
            return
        if self._suppressed:
            message = f"{message} ({self._suppressed} more since the last warning)"
        log.warning("%s", message)
        self._last_log = now
        self._suppressed = 0

    def health(self) -> dict:
        """Return the connection state and counters for ``/health``."""
        return {
            "broker": self.broker, "topics": list(self.topics), "connected": self.connected,
            "connects": self.connects, "connect_failures": self.connect_failures, "messages": self.messages,
            "errors": self.errors, "last_error": self.last_error, "last_message": self.last_message,
        }
