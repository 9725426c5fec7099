# -*- test-case-name: tests.channels.sim.test_sim_chirpstack -*-
"""Simulated LoRaWAN and NB-IoT meters, as a ChirpStack v4 network server would report them.

:class:`SimUplinks` makes each simulated device send an uplink every
``period`` seconds: its model's values are encoded by the device's payload
decoder (the same module that decodes them on the way in) and wrapped the
way the real senders wrap them:

- LoRaWAN: a ChirpStack v4 ``up`` event (pbjson JSON: lowerCamelCase,
  base64 ``data``, RFC 3339 ``time``, ``fCnt`` left out while it is 0) on
  topic ``application/<app id>/device/<dev eui>/event/up``, with a fresh
  ``deduplicationId``, a growing frame counter and plausible RU864 radio
  figures; a device without a decoder sends its values as the codec's
  ``object`` instead of a payload;
- NB-IoT: the JSON form ``{"id", "data" | "values", "time", "seq"}`` on
  topic ``nbiot/<id>/up``.

Each ``(topic, body)`` goes to a ``send`` callable: :class:`MqttPublisher`
(to a broker, as ChirpStack's MQTT integration), :class:`HttpPublisher` (to
this system's HTTP integration endpoints) or :class:`UdpPublisher` (NB-IoT
datagrams); tests pass a list's ``append``.  The first uplink of every
device comes within ``spread`` seconds of :meth:`SimUplinks.start`, so a
demo shows values at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import uuid
from collections import deque
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Callable, Mapping

from twisted.internet import defer, task

from channels.lorawan import decoders
from channels.lorawan.aio import cancel_and_wait, event_loop, stop_task
from channels.lorawan.uplink import normalise_eui
from tags.timefmt import iso_utc

log = logging.getLogger(__name__)

#: ChirpStack IDs of the simulated tenant and application (any UUIDs would do).
TENANT_ID = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"
APPLICATION_ID = "2a1b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d"
#: RU864 default channels (Hz): what a Russian network server reports.
RU864_FREQUENCIES = (868_900_000, 869_100_000)
#: Topic prefix of simulated NB-IoT messages (``nbiot/<id>/up``).
NBIOT_TOPIC = "nbiot"


@dataclass
class SimUplinkDevice:
    """One simulated uplink meter.

    Exactly one of ``dev_eui`` (LoRaWAN) and ``uplink_id`` (NB-IoT) is set.
    ``model`` gives the point values at a Unix time: a callable ``t -> dict``
    or an object with ``values(t)`` (``channels.sim.models``).  Without a
    ``decoder`` the values travel decoded (``object`` / ``values``).
    ``fport`` defaults to the decoder's ``DEFAULT_FPORT`` (2).
    """

    name: str
    model: Any
    period: float = 900.0
    dev_eui: str | None = None
    uplink_id: str | None = None
    decoder: str | None = None
    decoder_options: Mapping[str, Any] = field(default_factory=dict)
    fport: int | None = None
    #: Send the device's clock in the payload (decoders that can carry it).
    with_time: bool = True
    #: Frame counter of the next uplink.
    fcnt: int = 0

    def __post_init__(self) -> None:
        """Check the key and look the decoder up (KeyError naming a missing one)."""
        if (self.dev_eui is None) == (self.uplink_id is None):
            raise ValueError(f"simulated device {self.name!r} needs exactly one of dev_eui and uplink_id")
        if self.dev_eui is not None:
            self.dev_eui = normalise_eui(self.dev_eui, f"simulated device {self.name!r} dev_eui")
        if self.period <= 0:
            raise ValueError(f"simulated device {self.name!r}: period must be > 0")
        self.module = decoders.get(self.decoder) if self.decoder else None

    @property
    def kind(self) -> str:
        """Return ``lorawan`` or ``nbiot``."""
        return "lorawan" if self.dev_eui is not None else "nbiot"

    def values(self, t: float) -> dict[str, float]:
        """Return the model's point values at ``t``."""
        source = self.model.values if hasattr(self.model, "values") else self.model
        return {k: float(v) for k, v in source(t).items()}


class SimUplinks:
    """Send the uplinks of simulated devices on the reactor's clock.

    ``send(topic, body)`` may return a Deferred; its failures, like
    exceptions, are counted and never stop the simulation.
    """

    def __init__(self, reactor, devices: list[SimUplinkDevice], send: Callable[[str, bytes], Any], *,
                 application_id: str = APPLICATION_ID, tenant_id: str = TENANT_ID, spread: float = 3.0,
                 rng: random.Random | None = None) -> None:
        """Prepare the devices; nothing is sent before :meth:`start`."""
        self._reactor = reactor
        self.devices = list(devices)
        names = [d.name for d in self.devices]
        if len(set(names)) != len(names):
            raise ValueError("simulated uplink device names must be unique")
        self.send = send
        self.application_id = application_id
        self.tenant_id = tenant_id
        self.spread = spread
        self._rng = rng or random.Random(0x10AA)
        # Each device has its own radio conditions: distance to the gateway
        # does not change between uplinks, fading does.
        self._radio = {d.name: self._rng.uniform(-112.0, -78.0) for d in self.devices}
        self._pending: list = []
        self._loops: list[task.LoopingCall] = []
        self.sent = 0
        self.errors = 0
        self.last_error: str | None = None

    def start(self) -> None:
        """Send every device's first uplink within ``spread`` s, then one every ``period``."""
        count = max(1, len(self.devices))
        for i, device in enumerate(self.devices):
            delay = self.spread * (i + 0.5) / count
            self._pending.append(self._reactor.callLater(delay, self._begin, device))

    def _begin(self, device: SimUplinkDevice) -> None:
        loop = task.LoopingCall(self.send_uplink, device)
        loop.clock = self._reactor
        self._loops.append(loop)
        loop.start(device.period, now=True)

    def stop(self) -> None:
        """Stop sending."""
        for call in self._pending:
            if call.active():
                call.cancel()
        self._pending.clear()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()

    def send_uplink(self, device: SimUplinkDevice) -> None:
        """Build one uplink of ``device`` now and send it; count a failure."""
        try:
            topic, body = self.uplink(device, self._reactor.seconds())
            result = self.send(topic, body)
        except Exception as exc:  # noqa: BLE001 - one bad device must not stop the others
            self._failed(f"{device.name}: {type(exc).__name__}: {exc}")
            return
        self.sent += 1
        if isinstance(result, defer.Deferred):
            result.addErrback(lambda f: self._failed(f"{device.name}: {f.getErrorMessage()}"))

    def _failed(self, message: str) -> None:
        self.errors += 1
        if self.last_error != message:
            log.warning("simulated uplink not sent: %s", message)
        self.last_error = message

    def uplink(self, device: SimUplinkDevice, t: float) -> tuple[str, bytes]:
        """Return ``(topic, body)`` of ``device``'s next uplink at Unix time ``t``; advance its counter."""
        values = device.values(t)
        data, fport = b"", None
        if device.module is not None:
            port = device.fport if device.fport is not None else getattr(
                device.module, "DEFAULT_FPORT", getattr(device.module, "FPORT_DATA", 2))
            fport, data = device.module.encode(values, t if device.with_time else None,
                                               device.decoder_options, port)
        fcnt = device.fcnt
        device.fcnt = (fcnt + 1) & 0xFFFFFFFF
        if device.kind == "nbiot":
            doc: dict[str, Any] = {"id": device.uplink_id, "time": iso_utc(t), "seq": fcnt}
            if device.module is not None:
                doc["data"] = base64.b64encode(data).decode("ascii")
            else:
                doc["values"] = values
            return f"{NBIOT_TOPIC}/{device.uplink_id}/up", json.dumps(doc).encode("utf-8")
        return self._chirpstack_up(device, t, fcnt, fport, data, values)

    def _chirpstack_up(self, device: SimUplinkDevice, t: float, fcnt: int, fport: int | None, data: bytes,
                       values: dict[str, float]) -> tuple[str, bytes]:
        """Build a ChirpStack v4 ``up`` event as its MQTT integration publishes it."""
        rng = self._rng
        eui = device.dev_eui.lower()
        rssi = round(self._radio[device.name] + rng.gauss(0.0, 2.5))
        snr = round(max(-20.0, min(13.5, (rssi + 118.0) / 3.0 + rng.gauss(0.0, 1.0))), 1)
        spreading = 7 if rssi > -95 else 9 if rssi > -105 else 11
        doc: dict[str, Any] = {
            "deduplicationId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "time": iso_utc(t),
            "deviceInfo": {
                "tenantId": self.tenant_id, "tenantName": "SCADA simulator",
                "applicationId": self.application_id, "applicationName": "meters",
                "deviceProfileId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"device-profile/{device.decoder or 'object'}")),
                "deviceProfileName": device.decoder or "codec object", "deviceName": device.name,
                "devEui": eui, "deviceClassEnabled": "CLASS_A", "tags": {},
            },
            "devAddr": f"{int(eui[-8:], 16) & 0x01FFFFFF:08x}",
            "adr": True,
            "dr": 12 - spreading,
        }
        if device.module is None:
            # ChirpStack runs the codec: the values arrive decoded in ``object``.
            fport = device.fport or 1
        # pbjson leaves out fields at their default value (0, "", []).
        if fcnt:
            doc["fCnt"] = fcnt
        if fport:
            doc["fPort"] = fport
        doc["confirmed"] = False
        if data:
            doc["data"] = base64.b64encode(data).decode("ascii")
        if device.module is None:
            doc["object"] = values
        doc["rxInfo"] = [{
            "gatewayId": "0016c001ff1e5b7a", "uplinkId": rng.getrandbits(32), "time": iso_utc(t),
            "rssi": rssi, "snr": snr, "channel": fcnt % 2, "location": {},
            "context": base64.b64encode(rng.getrandbits(32).to_bytes(4, "big")).decode("ascii"),
            "metadata": {"region_config_id": "ru864", "region_common_name": "RU864"}, "crcStatus": "CRC_OK",
        }]
        doc["txInfo"] = {"frequency": RU864_FREQUENCIES[fcnt % 2],
                         "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": spreading,
                                                 "codeRate": "CR_4_5"}}}
        topic = f"application/{self.application_id}/device/{eui}/event/up"
        return topic, json.dumps(doc).encode("utf-8")

    def health(self) -> dict:
        """Return the simulator's counters."""
        return {"devices": len(self.devices), "sent": self.sent, "errors": self.errors,
                "last_error": self.last_error}


# ------------------------------------------------------------------ publishers


class MqttPublisher:
    """Publish ``(topic, body)`` to an MQTT broker at QoS 0, as ChirpStack's MQTT integration does.

    Use as the ``send`` of :class:`SimUplinks`.  Messages wait in a queue of
    ``queue_size`` while the broker is away (the oldest are dropped when it
    is full, and counted); the connection is retried with backoff.
    :meth:`start` schedules the asyncio task; :meth:`stop` returns a
    Deferred, :meth:`aclose` is its asyncio twin.
    """

    def __init__(self, host: str, port: int = 1883, *, client_id: str | None = None, queue_size: int = 1000,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0) -> None:
        """Prepare the publisher; nothing connects before :meth:`start`."""
        self.host = host
        self.port = int(port)
        self.client_id = client_id
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._queue: deque[tuple[str, bytes]] = deque(maxlen=queue_size)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.connected = False
        self.published = 0
        self.dropped = 0
        self.errors = 0
        self.last_error: str | None = None

    def __call__(self, topic: str, body: bytes) -> None:
        """Queue one message for publishing."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append((topic, bytes(body)))
        if self._wake is not None:
            self._wake.set()

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Schedule the publishing task on ``loop`` (default: the running loop, else the current one)."""
        if self._task is not None and not self._task.done():
            return
        loop = event_loop(loop)
        self._stopping = False
        self._task = loop.create_task(self._run(), name=f"mqtt-publisher {self.host}:{self.port}")

    def stop(self):
        """End the task; return a Deferred that fires when it has ended."""
        task_, self._task = self._task, None
        self._stopping = True
        return stop_task(task_)

    async def aclose(self) -> None:
        """End the task and wait for it (asyncio)."""
        task_, self._task = self._task, None
        self._stopping = True
        await cancel_and_wait(task_)

    async def _run(self) -> None:
        import aiomqtt

        self._wake = asyncio.Event()
        delay = self.backoff_initial
        while not self._stopping:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=self.client_id) as client:
                    self.connected = True
                    delay = self.backoff_initial
                    while True:
                        while self._queue:
                            topic, body = self._queue[0]
                            await client.publish(topic, body, qos=0)
                            # Dequeued only once handed to the client: a lost
                            # connection keeps the message for the next one.
                            self._queue.popleft()
                            self.published += 1
                        self._wake.clear()
                        await self._wake.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - aiomqtt.MqttError and socket errors alike: retry
                self.errors += 1
                if self.last_error != str(exc):
                    log.warning("simulator MQTT publisher: %s:%s: %s", self.host, self.port, exc)
                self.last_error = str(exc)
            finally:
                self.connected = False
            await asyncio.sleep(delay)
            delay = min(self.backoff_max, delay * 2)

    def health(self) -> dict:
        """Return the publisher's state and counters."""
        return {"broker": f"{self.host}:{self.port}", "connected": self.connected, "queued": len(self._queue),
                "published": self.published, "dropped": self.dropped, "errors": self.errors,
                "last_error": self.last_error}


class HttpPublisher:
    """POST simulated uplinks to this system's HTTP integration endpoints.

    ChirpStack events go to ``<url>/api/v1/integrations/chirpstack?event=<event>``
    and NB-IoT messages to ``<url>/api/v1/integrations/uplink``, as JSON,
    with ``Authorization: Bearer <token>`` when a token is given.  Use as
    the ``send`` of :class:`SimUplinks`; each call returns a Deferred that
    fires with the HTTP status (errback on a refusal or no connection).
    """

    CHIRPSTACK_PATH = "/api/v1/integrations/chirpstack"
    NBIOT_PATH = "/api/v1/integrations/uplink"

    def __init__(self, reactor, url: str, token: str | None = None, *, timeout: float = 10.0) -> None:
        """Keep a persistent connection pool to ``url`` (scheme, host and port)."""
        from twisted.web.client import Agent, HTTPConnectionPool

        self._reactor = reactor
        self.url = url.rstrip("/")
        self.token = token
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._agent = Agent(reactor, connectTimeout=timeout, pool=self._pool)
        self.timeout = timeout
        self.posted = 0
        self.errors = 0
        self.last_error: str | None = None

    def target(self, topic: str) -> str:
        """Return the URL a message of ``topic`` is posted to."""
        if topic.startswith(NBIOT_TOPIC + "/"):
            return self.url + self.NBIOT_PATH
        event = topic.rsplit("/", 1)[-1] if "/event/" in topic else "up"
        return f"{self.url}{self.CHIRPSTACK_PATH}?event={event}"

    def __call__(self, topic: str, body: bytes):
        """POST one message; return a Deferred firing with the status code."""
        from twisted.web.client import FileBodyProducer, readBody
        from twisted.web.http_headers import Headers

        headers = Headers({b"Content-Type": [b"application/json"]})
        if self.token:
            headers.addRawHeader(b"Authorization", f"Bearer {self.token}".encode("ascii"))
        d = self._agent.request(b"POST", self.target(topic).encode("ascii"), headers,
                                FileBodyProducer(BytesIO(body)))
        d.addTimeout(self.timeout, self._reactor)

        def answered(response):
            return readBody(response).addCallback(lambda text: (response.code, text))

        def check(result):
            code, text = result
            if code >= 300:
                raise RuntimeError(f"HTTP {code}: {text[:200].decode('utf-8', 'replace')}")
            self.posted += 1
            return code

        def failed(failure):
            self.errors += 1
            self.last_error = failure.getErrorMessage()
            return failure

        d.addCallback(answered)
        d.addCallback(check)
        d.addErrback(failed)
        return d

    def stop(self):
        """Close the pooled connections; return a Deferred."""
        return self._pool.closeCachedConnections()

    def health(self) -> dict:
        """Return the publisher's counters."""
        return {"url": self.url, "posted": self.posted, "errors": self.errors, "last_error": self.last_error}


class UdpPublisher:
    """Send simulated NB-IoT messages as UDP datagrams to ``host:port`` (ChirpStack events are skipped).

    Use as the ``send`` of :class:`SimUplinks` for an ``nbiot`` channel with
    ``transport: {udp: ...}``.  ``host`` is an IP address (Twisted's UDP
    ports do not resolve names).
    """

    def __init__(self, reactor, host: str, port: int) -> None:
        """Keep the target; the sending socket opens at the first message."""
        self._reactor = reactor
        self.host = host
        self.port = int(port)
        self._port = None
        self.sent = 0
        self.skipped = 0

    def __call__(self, topic: str, body: bytes) -> None:
        """Send one NB-IoT message as a datagram."""
        if not topic.startswith(NBIOT_TOPIC + "/"):
            self.skipped += 1
            return
        if self._port is None:
            from twisted.internet.protocol import DatagramProtocol

            self._port = self._reactor.listenUDP(0, DatagramProtocol())
        self._port.write(body, (self.host, self.port))
        self.sent += 1

    def stop(self):
        """Close the sending socket; return a Deferred."""
        port, self._port = self._port, None
        if port is None:
            return defer.succeed(None)
        return defer.maybeDeferred(port.stopListening)
