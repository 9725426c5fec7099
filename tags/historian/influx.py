# -*- test-case-name: tests.tags.test_influx_store -*-
"""History in InfluxDB: writes queued line protocol, reads back with InfluxQL.

`InfluxStore` is a `Store`: the store-and-forward historian hands it one
batch of lines at a time (`tags.historian.lines` describes the schema:
measurement ``samples``, tags ``device`` and ``tag``, fields ``quality``
and ``value``, integer microsecond timestamps) and forwards trend and
report queries to it.

Two write paths:

- ``v1`` (the default): ``POST /write?db=…&precision=u``.  It is InfluxDB
  1.x's own API, and 2.x and 3.x serve it for compatibility, so one path
  covers every server.  Authentication is basic auth (``username`` /
  ``password``) or, with ``token``, ``Authorization: Token …``.
- ``v2``: with ``token``, ``org`` and ``bucket`` all set, writes go through
  the ``influxdb-client`` package's asyncio client to ``/api/v2/write``
  (InfluxDB 2.x and Cloud).  It runs on the asyncio loop under the
  asyncio reactor; no thread.

Queries always use InfluxQL over ``/query`` (``db`` is the bucket on 2.x,
which maps buckets to databases), so Grafana's InfluxQL data source and
this class read the same points in the same way.

Every HTTP request runs on the injected reactor through Twisted's own
client with a persistent connection pool, and is bounded by ``timeout``
(connect and response).  Errors are classified for the queue: anything a
later retry may cure is `StoreUnavailable`, a batch the server refuses for
good is `StoreRejected`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode, urlsplit

from twisted.internet import defer, error
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    ResponseFailed,
    readBody,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

from tags.historian.base import AggRow, Store, StoreRejected, StoreUnavailable, await_deferred
from tags.historian.influxql import USABLE_CLAUSE, quote_ident, quote_string
from tags.historian.lines import MEASUREMENT
from tags.model import Sample
from tags.quality import Quality

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IReactorTime

_log = logging.getLogger(__name__)

T = TypeVar("T")

#: Earliest and latest microsecond InfluxDB can hold (its limits are int64
#: nanoseconds, minus two reserved values); query bounds are clamped to them.
MIN_MICROS = -9_223_372_036_854_775
MAX_MICROS = 9_223_372_036_854_775


#: `InfluxStore.query_at_many` asks for at most this many tags per query (the URL stays a few kB).
AT_TAGS_PER_QUERY = 100

_QUALITY_BY_TEXT = {q.value: q for q in Quality}
_USER_AGENT = b"scada-metering historian"
# Longest server error text kept in a message; InfluxDB repeats the whole
# offending line in parse errors, which can be long.
_MAX_ERROR_TEXT = 500


def to_micros(ts: float) -> int:
    """Return Unix seconds ``ts`` as integer microseconds, clamped to InfluxDB's range.

    Rounds as `tags.historian.lines.Encoder` does, so a bound equal to a
    sample's time selects the point that sample was written as.
    """
    ts = float(ts)
    if math.isnan(ts):
        raise ValueError("a query bound must be a number, not NaN")
    if ts * 1_000_000 <= MIN_MICROS:
        return MIN_MICROS
    if ts * 1_000_000 >= MAX_MICROS:
        return MAX_MICROS
    return round(ts * 1_000_000)


def parse_version(version: str | None) -> int | None:
    """Return the major version of an ``X-Influxdb-Version`` header (``v2.7.1`` → 2)."""
    if not version:
        return None
    digits = ""
    for char in version.strip().lstrip("vV"):
        if not char.isdigit():
            break
        digits += char
    return int(digits) if digits else None


class _RequestTimeout(Exception):
    """A request got no complete answer within the store's timeout."""


@implementer(IBodyProducer)
class _BytesProducer:
    """A request body that is already in memory: written in one go, no cooperator."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> Deferred[None]:  # noqa: N802 - Twisted interface
        """Write the whole body at once."""
        consumer.write(self._body)
        return defer.succeed(None)

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted interface
        """Nothing to pause: the body was written in one go."""

    def resumeProducing(self) -> None:  # noqa: N802 - Twisted interface
        """Nothing to resume."""

    def stopProducing(self) -> None:  # noqa: N802 - Twisted interface
        """Nothing to stop."""


@implementer(IAgentEndpointFactory)
class _EndpointFactory:
    """Where the Agent connects: straight to an IP address, or through name resolution.

    Twisted's standard factory sends even ``127.0.0.1`` through
    ``getaddrinfo`` in the reactor's thread pool, and waits its 0.3 s
    "happy eyeballs" delay before reporting a refused connection.  An
    address needs neither; only a host name goes through `HostnameEndpoint`
    (whose resolver thread is Twisted's, DESIGN rule 1's library case).
    """

    def __init__(self, reactor: Any, timeout: float) -> None:
        self._reactor = reactor
        self._timeout = timeout
        self._tls: Any = None

    def endpointForURI(self, uri: Any) -> Any:  # noqa: N802 - Twisted interface
        """Return the endpoint for ``uri``: TCP to an address, TLS around it for https."""
        host = uri.host.decode("ascii")
        if isIPAddress(host):
            endpoint: Any = TCP4ClientEndpoint(self._reactor, host, uri.port, self._timeout)
        elif isIPv6Address(host):
            endpoint = TCP6ClientEndpoint(self._reactor, host, uri.port, self._timeout)
        else:
            endpoint = HostnameEndpoint(self._reactor, uri.host, uri.port, self._timeout)
        if uri.scheme == b"https":
            if self._tls is None:
                self._tls = BrowserLikePolicyForHTTPS()
            endpoint = wrapClientTLS(self._tls.creatorForNetloc(uri.host, uri.port), endpoint)
        return endpoint


class _Response:
    """Status, headers and body of one HTTP exchange."""

    __slots__ = ("body", "code", "headers")

    def __init__(self, code: int, headers: Headers, body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """Return the first value of header ``name``, or None."""
        values = self.headers.getRawHeaders(name.encode())
        return values[0].decode("latin-1") if values else None

    def error_text(self) -> str:
        """Return the server's explanation: JSON ``error``/``message``, a header, or the body."""
        text = ""
        try:
            doc = json.loads(self.body)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            text = str(doc.get("error") or doc.get("message") or "")
        if not text:
            text = self.header("X-Influxdb-Error") or self.body.decode("utf-8", "replace").strip()
        text = text or f"HTTP {self.code}"
        if len(text) > _MAX_ERROR_TEXT:
            text = text[:_MAX_ERROR_TEXT] + "…"
        return text


class InfluxStore(Store):
    """A `Store` on InfluxDB 1.x, 2.x or 3.x; see the module docstring.

    ``url`` is the server's base URL.  ``database`` is the 1.x database
    (created by `open` unless ``create_database`` is false); on 2.x give
    ``bucket`` (queried as the database of that name) and ``token``, plus
    ``org`` to write through the native 2.x API.  ``retention_policy``
    selects a 1.x retention policy for writes and queries.  ``timeout``
    bounds every request, in seconds.
    """

    backend = "influxdb"

    def __init__(
        self,
        reactor: IReactorTime,
        url: str = "http://127.0.0.1:8086",
        database: str = "scada",
        measurement: str = MEASUREMENT,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        org: str | None = None,
        bucket: str | None = None,
        retention_policy: str | None = None,
        timeout: float = 10.0,
        create_database: bool = True,
    ) -> None:
        """Check the settings and prepare the connection pool; nothing is sent yet.

        Raises ``ValueError`` naming the setting if one is unusable, and
        ``RuntimeError`` if the 2.x path is configured but the
        ``influxdb-client`` package is not installed.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"InfluxDB url must be http://host:port or https://…, not {url!r}")
        if parts.scheme == "https":
            try:
                import OpenSSL  # noqa: F401
                import service_identity  # noqa: F401
            except ImportError:
                raise RuntimeError(
                    f"InfluxDB url {url!r} is https, which needs Twisted's TLS extras: "
                    "pip install 'twisted[tls]'"
                ) from None
        if not database and not bucket:
            raise ValueError("InfluxDB needs a database (1.x) or a bucket (2.x)")
        if not measurement:
            raise ValueError("InfluxDB measurement must not be empty")
        timeout = float(timeout)
        if not timeout > 0:
            raise ValueError(f"InfluxDB timeout must be positive, not {timeout!r}")
        if org and not (token and bucket):
            raise ValueError("InfluxDB org is only used with token and bucket (the 2.x write API)")
        if password is not None and username is None:
            raise ValueError("InfluxDB password given without username")
        self._reactor = reactor
        self.url = url.rstrip("/")
        self.database = bucket or database
        self.measurement = measurement
        self._retention_policy = retention_policy or None
        self._timeout = timeout
        self._create_database = bool(create_database)
        self._token = token or None
        self._org = org or None
        self._bucket = bucket or None
        self.write_path = "v2" if (self._token and self._org and self._bucket) else "v1"

        self._auth: bytes | None = None
        if self._token:
            self._auth = b"Token " + self._token.encode()
        elif username is not None:
            pair = f"{username}:{password or ''}".encode()
            self._auth = b"Basic " + base64.b64encode(pair)

        self._v2_client: Any = None
        self._v2_write_precision: Any = None
        self._v2_api_exception: type[Exception] | None = None
        if self.write_path == "v2":
            try:
                import aiohttp  # noqa: F401 - the async client's transport
                from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync  # noqa: F401
                from influxdb_client.client.write_api import WritePrecision
                from influxdb_client.rest import ApiException
            except ImportError as exc:
                raise RuntimeError(
                    "InfluxDB token, org and bucket select the 2.x write API, which needs the "
                    "influxdb-client package: pip install 'influxdb-client[async]' "
                    f"({exc})"
                ) from None
            self._v2_write_precision = WritePrecision.US
            self._v2_api_exception = ApiException

        if self._retention_policy:
            self._from = f"{quote_ident(self._retention_policy)}.{quote_ident(measurement)}"
        else:
            self._from = quote_ident(measurement)

        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 2
        self._agent = Agent.usingEndpointFactory(reactor, _EndpointFactory(reactor, timeout), pool=self._pool)
        self._closed = False
        #: The pool's closeCachedConnections Deferred, once `close` ran.
        self.closing: Deferred[None] | None = None

        self.server_version: str | None = None
        self.server_build: str | None = None
        self.server_major: int | None = None
        self._batches_written = 0
        self._lines_written = 0
        self._unavailable_errors = 0
        self._rejected_batches = 0
        self._query_errors = 0
        self._databases_created = 0
        self._last_error: str | None = None
        self._last_error_ts: float | None = None
        self._last_write_ts: float | None = None
        self._failing = False
        self._bad_qualities: set[str] = set()

    # -- Store -----------------------------------------------------------

    def open(self) -> Deferred[None]:
        """Ping the server, note its version, create the 1.x database if asked.

        Fails with `StoreUnavailable` naming the URL if the server does not
        answer ``/ping``.  A refused ``CREATE DATABASE`` (a user without
        admin rights, a database that exists) is only logged: writes tell
        whether the database is usable.
        """
        return defer.Deferred.fromCoroutine(self._open())

    async def _open(self) -> None:
        if self._closed:
            raise StoreUnavailable(f"InfluxDB store for {self.url} is closed")
        try:
            response = await self._request(b"GET", "/ping", {})
        except StoreUnavailable as exc:
            self._note_error(str(exc))
            raise
        if not 200 <= response.code < 300:
            message = f"InfluxDB {self.url}/ping answered HTTP {response.code}: {response.error_text()}"
            self._note_error(message)
            raise StoreUnavailable(message)
        self.server_version = response.header("X-Influxdb-Version")
        self.server_build = response.header("X-Influxdb-Build")
        if self.server_version is None and response.body:
            # InfluxDB 3 also describes itself in a JSON body.
            try:
                self.server_version = str(json.loads(response.body).get("version") or "") or None
            except (ValueError, AttributeError):
                pass
        self.server_major = parse_version(self.server_version)
        _log.info(
            "InfluxDB %s: version %s (%s), write path %s, database %r",
            self.url,
            self.server_version or "unknown",
            self.server_build or "build unknown",
            self.write_path,
            self.database,
        )
        if self.server_major == 1 and self._create_database and self.write_path == "v1":
            await self._create()

    def deliver(self, batch: bytes, count: int) -> Deferred[None]:
        """Write ``batch`` (``count`` lines); see `Store.deliver` for the outcomes."""
        if self.write_path == "v2":
            d = defer.Deferred.fromFuture(asyncio.ensure_future(self._deliver_v2(batch), loop=self._loop()))
        else:
            d = defer.Deferred.fromCoroutine(self._deliver_v1(batch))
        d.addCallbacks(self._delivered, self._failed, callbackArgs=(count,))
        return d

    async def query_raw(self, name: str, start: float, end: float, limit: int = 100_000) -> list[Sample]:
        """Return up to ``limit`` samples of ``name`` with ``start <= ts < end``, oldest first.

        A point whose quality text is not a `Quality` (written by something
        else) comes back as ``decode_failed`` without a value.  Raises
        `StoreUnavailable` when the server cannot answer.
        """
        if limit < 0:
            raise ValueError(f"limit must not be negative, not {limit!r}")
        limit = int(limit)
        lo, hi = to_micros(start), to_micros(end)
        out: list[Sample] = []
        # InfluxQL's LIMIT 0 means no limit; ours means nothing.
        while len(out) < limit and lo < hi:
            query = (
                f'SELECT "value", "quality" FROM {self._from} WHERE "tag" = {quote_string(name)} '
                f"AND time >= {lo}u AND time < {hi}u ORDER BY time ASC LIMIT {limit - len(out)}"
            )
            rows, partial = await self._select(query, ("time", "value", "quality"))
            for row in rows:
                out.append(self._sample(name, row))
            # A server with max-row-limit set cuts the answer short and
            # says so; ask again from after the last row.
            if not partial or not rows:
                break
            lo = int(rows[-1][0]) + 1
        return out[:limit]

    async def query_agg(self, name: str, start: float, end: float, every: float) -> list[AggRow]:
        """Aggregate ``name`` per ``every``-second bucket in InfluxQL; see `Historian.query_agg`.

        ``GROUP BY time()`` without an offset aligns buckets to multiples
        of the interval since the epoch (floor, also for negative times),
        which is the SQLite historian's rule; ``every`` must therefore be
        a whole number of microseconds.
        """
        every = float(every)
        if not every > 0:
            raise ValueError(f"aggregation interval must be positive, not {every!r}")
        every_us = round(every * 1_000_000)
        if every_us < 1 or abs(every * 1_000_000 - every_us) > 1e-3:
            raise ValueError(f"aggregation interval must be a whole number of microseconds, not {every!r}")
        lo, hi = to_micros(start), to_micros(end)
        out: list[AggRow] = []
        while lo < hi:
            # The upper bound is always explicit: without one, InfluxDB 1.x
            # stops a GROUP BY time() query at now().
            query = (
                'SELECT min("value"), max("value"), mean("value"), last("value"), count("value") '
                f'FROM {self._from} WHERE "tag" = {quote_string(name)} AND {USABLE_CLAUSE} '
                f"AND time >= {lo}u AND time < {hi}u GROUP BY time({every_us}u) fill(none)"
            )
            rows, partial = await self._select(query, ("time", "min", "max", "mean", "last", "count"))
            for ts, lo_v, hi_v, mean, last, count in rows:
                if not count or ts is None:
                    continue
                # The bucket number times ``every``, as SQLite computes ts,
                # so that both backends give the very same float.
                out.append(
                    AggRow(
                        (int(ts) // every_us) * every,
                        _float(lo_v),
                        _float(hi_v),
                        _float(mean),
                        _float(last),
                        int(count),
                    )
                )
            # max-row-limit cuts GROUP BY answers short too; go on from the
            # bucket after the last one returned.
            if not partial or not rows:
                break
            lo = int(rows[-1][0]) + every_us
        return out

    async def query_at(self, name: str, at: float, since: float) -> Sample | None:
        """Return the last usable sample of ``name`` with ``since <= ts <= at``; see `Historian.query_at`."""
        return (await self.query_at_many([name], at, since))[name]

    async def query_at_many(self, names: Sequence[str], at: float, since: float) -> dict[str, Sample | None]:
        """Return `query_at` for every name, :data:`AT_TAGS_PER_QUERY` tags per InfluxQL query.

        ``last("value")`` picks the newest point that has a value among the
        usable ones, and ``"quality"`` next to a selector is that same
        point's field; ``GROUP BY "tag"`` gives one such row per tag.
        """
        at, since = float(at), float(since)
        if math.isnan(at) or math.isnan(since):
            raise ValueError("query_at bounds must be numbers, not NaN")
        lo, hi = to_micros(since), to_micros(at)
        out: dict[str, Sample | None] = dict.fromkeys(names)
        wanted = list(out)
        if lo > hi:
            return out
        for first in range(0, len(wanted), AT_TAGS_PER_QUERY):
            chunk = wanted[first:first + AT_TAGS_PER_QUERY]
            which = " OR ".join(f'"tag" = {quote_string(name)}' for name in chunk)
            query = (
                f'SELECT last("value") AS "value", "quality" FROM {self._from} WHERE ({which}) '
                f'AND {USABLE_CLAUSE} AND time >= {lo}u AND time <= {hi}u GROUP BY "tag"'
            )
            rows, _ = await self._select(query, ("time", "value", "quality"), by_tag=True)
            for micros, value, quality, name in rows:
                if name in out and value is not None:
                    out[name] = self._sample(name, [micros, value, quality])
        return out

    def close(self) -> None:
        """Close pooled connections (and the 2.x client); later deliveries fail."""
        if self._closed:
            return
        self._closed = True
        self.closing = self._pool.closeCachedConnections()
        client, self._v2_client = self._v2_client, None
        if client is not None:
            asyncio.ensure_future(client.close(), loop=self._loop())

    def stats(self) -> dict[str, Any]:
        """Return the server, the write path and the write and error counters."""
        return {
            "backend": self.backend,
            "url": self.url,
            "database": self.database,
            "measurement": self.measurement,
            "retention_policy": self._retention_policy,
            "server_version": self.server_version,
            "server_build": self.server_build,
            "server_major": self.server_major,
            "write_path": self.write_path,
            "batches_written": self._batches_written,
            "lines_written": self._lines_written,
            "last_write_ts": self._last_write_ts,
            "unavailable_errors": self._unavailable_errors,
            "rejected_batches": self._rejected_batches,
            "query_errors": self._query_errors,
            "create_database_ok": self._databases_created,
            "last_error": self._last_error,
            "last_error_ts": self._last_error_ts,
        }

    # -- writes ----------------------------------------------------------

    async def _deliver_v1(self, batch: bytes) -> None:
        """POST the batch to ``/write``; raise `StoreUnavailable` or `StoreRejected`."""
        params = {"db": self.database, "precision": "u"}
        if self._retention_policy:
            params["rp"] = self._retention_policy
        response = await self._request(b"POST", "/write", params, batch, b"text/plain; charset=utf-8")
        if 200 <= response.code < 300:
            return
        text = response.error_text()
        if response.code == 404 and "database not found" in text:
            created = ""
            if self._create_database and self.server_major in (None, 1):
                created = "; " + await self._create()
            raise StoreUnavailable(f"InfluxDB {self.url}: {text}{created}; will retry")
        raise self._classify(response.code, text, "write")

    async def _deliver_v2(self, batch: bytes) -> None:
        """Write the batch through ``influxdb-client``'s asyncio API (``/api/v2/write``)."""
        if self._closed:
            raise StoreUnavailable(f"InfluxDB store for {self.url} is closed")
        import aiohttp
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

        if self._v2_client is None:
            # The client needs a running loop to be built, so it is built
            # on first use rather than in __init__.
            self._v2_client = InfluxDBClientAsync(
                url=self.url, token=self._token, org=self._org, timeout=int(self._timeout * 1000)
            )
        try:
            await self._v2_client.write_api().write(
                bucket=self._bucket, org=self._org, record=batch, write_precision=self._v2_write_precision
            )
        except (StoreUnavailable, StoreRejected):
            raise
        except Exception as exc:
            status = getattr(exc, "status", None)
            if self._v2_api_exception is not None and isinstance(exc, self._v2_api_exception) and status:
                text = getattr(exc, "message", "") or exc.reason or f"HTTP {status}"
                if isinstance(text, bytes):  # a body that was not JSON
                    text = text.decode("utf-8", "replace")
                text = str(text).strip()
                raise self._classify(int(status), text[:_MAX_ERROR_TEXT], "write") from None
            if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, OSError)):
                kind = "timed out" if isinstance(exc, asyncio.TimeoutError) else "unreachable"
                raise StoreUnavailable(f"InfluxDB {self.url} {kind}: {exc!r}") from None
            raise

    def _classify(self, code: int, text: str, what: str) -> Exception:
        """Return the exception for an unsuccessful HTTP status of a write."""
        message = f"InfluxDB {self.url} refused the {what} with HTTP {code}: {text}"
        if code in (401, 403):
            return StoreUnavailable(message + " (check username/password or token)")
        if code in (404, 408, 429) or code >= 500 or code < 400:
            # 404: database or bucket missing (a setup step, not the
            # data's fault); 408/429: come back later; 5xx: server trouble.
            return StoreUnavailable(message)
        # 400 unable to parse / field type conflict / partial write, 413
        # too large, 422 outside retention: these lines will never fit.
        return StoreRejected(message)

    def _delivered(self, _: object, count: int) -> None:
        """Count a confirmed batch; log the end of an outage."""
        self._batches_written += 1
        self._lines_written += count
        self._last_write_ts = self._reactor.seconds()
        if self._failing:
            self._failing = False
            _log.warning("InfluxDB %s: writes work again", self.url)

    def _failed(self, failure: Any) -> Any:
        """Count and log a failed batch, turning stray errors into `StoreUnavailable`."""
        if failure.check(StoreRejected):
            self._rejected_batches += 1
            self._note_error(str(failure.value))
            _log.error("%s", failure.value)
            return failure
        if not failure.check(StoreUnavailable):
            # An error nobody foresaw must not make the queue drop a batch:
            # keep it and retry.
            _log.error("InfluxDB %s: unexpected write error", self.url, exc_info=failure.value)
            failure = StoreUnavailable(f"InfluxDB {self.url}: unexpected error {failure.value!r}")
        else:
            failure = failure.value
        self._unavailable_errors += 1
        if not self._failing or str(failure) != self._last_error:
            _log.warning("%s", failure)
        self._failing = True
        self._note_error(str(failure))
        raise failure

    async def _create(self) -> str:
        """Send ``CREATE DATABASE`` (idempotent in 1.x); return what happened, never raise."""
        q = f"CREATE DATABASE {quote_ident(self.database)}"
        try:
            response = await self._request(
                b"POST", "/query", {}, urlencode({"q": q}).encode(), b"application/x-www-form-urlencoded"
            )
        except StoreUnavailable as exc:
            return f"CREATE DATABASE failed: {exc}"
        problem = None
        if response.code != 200:
            problem = f"HTTP {response.code}: {response.error_text()}"
        else:
            try:
                result = json.loads(response.body)["results"][0]
                problem = result.get("error")
            except (ValueError, KeyError, IndexError, TypeError):
                problem = f"unexpected answer {response.body[:200]!r}"
        if problem:
            message = f"CREATE DATABASE {self.database!r} on {self.url} failed: {problem}"
            _log.warning("%s", message)
            self._note_error(message)
            return message
        self._databases_created += 1
        _log.info("InfluxDB %s: database %r is there", self.url, self.database)
        return f"created database {self.database!r}"

    # -- queries ---------------------------------------------------------

    async def _select(
        self, query: str, columns: tuple[str, ...], by_tag: bool = False
    ) -> tuple[list[list[Any]], bool]:
        """Run one InfluxQL SELECT; return its rows and whether the server cut them short.

        Each row holds the values of ``columns`` (None for a column the
        answer lacks); rows of several series are merged in time order.
        With ``by_tag`` (a query grouped ``BY "tag"``) each row ends with
        its series' tag name.
        """
        params = {"db": self.database, "epoch": "u", "q": query}
        try:
            response = await await_deferred(self._request(b"GET", "/query", params))
        except StoreUnavailable as exc:
            self._query_failed(str(exc))
            raise
        if response.code == 400 and b"error parsing query" in response.body:
            # Our query is malformed: a bug here, not a server condition.
            raise RuntimeError(f"InfluxDB {self.url} cannot parse {query!r}: {response.error_text()}")
        if response.code != 200:
            message = f"InfluxDB {self.url} refused a query with HTTP {response.code}: {response.error_text()}"
            self._query_failed(message)
            raise StoreUnavailable(message)
        try:
            results = json.loads(response.body)["results"]
            result = results[0] if results else {}
        except (ValueError, KeyError, TypeError) as exc:
            message = f"InfluxDB {self.url} answered a query with unreadable JSON: {exc}"
            self._query_failed(message)
            raise StoreUnavailable(message) from None
        if result.get("error"):
            message = f"InfluxDB {self.url} query failed: {result['error']}"
            self._query_failed(message)
            raise StoreUnavailable(message)
        series = result.get("series") or []
        partial = bool(result.get("partial")) or any(s.get("partial") for s in series)
        rows = []
        for one in series:
            # Pick columns by name: servers may add or reorder columns.
            index = {name: i for i, name in enumerate(one.get("columns") or [])}
            picks = [index.get(name) for name in columns]
            for row in one.get("values") or []:
                picked = [None if i is None else row[i] for i in picks]
                if by_tag:
                    picked.append((one.get("tags") or {}).get("tag"))
                rows.append(picked)
        if len(series) > 1:
            rows.sort(key=lambda row: row[0])
        return rows, partial

    def _query_failed(self, message: str) -> None:
        self._query_errors += 1
        self._note_error(message)

    def _sample(self, name: str, row: list[Any]) -> Sample:
        """Turn one ``[time, value, quality]`` row into a Sample."""
        micros, value, text = row
        ts = int(micros) / 1_000_000
        quality = _QUALITY_BY_TEXT.get(text)  # type: ignore[arg-type]
        if quality is None:
            if text not in self._bad_qualities:
                self._bad_qualities.add(text)
                _log.warning(
                    "InfluxDB %s: tag %r has a point with unknown quality %r; read as decode_failed",
                    self.url,
                    name,
                    text,
                )
            return Sample(name, None, Quality.DECODE_FAILED, ts)
        return Sample(name, _float(value), quality, ts)

    # -- HTTP ------------------------------------------------------------

    def _request(
        self,
        method: bytes,
        path: str,
        params: dict[str, str],
        body: bytes | None = None,
        content_type: bytes | None = None,
    ) -> Deferred[_Response]:
        """Send one request; fire with the whole response or fail with `StoreUnavailable`.

        A request that found its pooled connection closed by the server is
        sent once more: every request here is idempotent (a rewritten line
        lands on the same point).
        """
        return defer.Deferred.fromCoroutine(self._request_retrying(method, path, params, body, content_type))

    async def _request_retrying(
        self,
        method: bytes,
        path: str,
        params: dict[str, str],
        body: bytes | None,
        content_type: bytes | None,
    ) -> _Response:
        if self._closed:
            raise StoreUnavailable(f"InfluxDB store for {self.url} is closed")
        uri = self.url + path + ("?" + urlencode(params) if params else "")
        headers = Headers({b"User-Agent": [_USER_AGENT]})
        if self._auth is not None:
            headers.addRawHeader(b"Authorization", self._auth)
        if content_type is not None:
            headers.addRawHeader(b"Content-Type", content_type)
        for attempt in (1, 2):
            try:
                return await self._exchange(method, uri.encode(), headers, body)
            except (error.ConnectionLost, ResponseFailed) as exc:
                if attempt == 2 or not _never_answered(exc):
                    raise StoreUnavailable(f"InfluxDB {self.url} dropped the connection: {_reason(exc)}") from None
            except (_RequestTimeout, error.TimeoutError):
                raise StoreUnavailable(
                    f"InfluxDB {self.url} did not answer {path} within {self._timeout:g} s"
                ) from None
            except error.ConnectError as exc:
                raise StoreUnavailable(f"InfluxDB {self.url} is unreachable: {_reason(exc)}") from None
            except error.DNSLookupError as exc:
                raise StoreUnavailable(f"InfluxDB {self.url}: cannot resolve host: {exc}") from None
            except Exception as exc:
                # TLS trouble and the like: nothing a later retry is sure
                # not to cure, and a query or write must not die of it.
                raise StoreUnavailable(f"InfluxDB {self.url}: request failed: {_reason(exc)}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(self, method: bytes, uri: bytes, headers: Headers, body: bytes | None) -> _Response:
        """One request and its body, cancelled after ``timeout`` seconds."""

        async def go() -> _Response:
            producer = _BytesProducer(body) if body is not None else None
            response = await self._agent.request(method, uri, headers, producer)
            data = await readBody(response)
            return _Response(response.code, response.headers, data)

        d = defer.Deferred.fromCoroutine(go())
        expired = []

        def expire() -> None:
            expired.append(True)
            d.cancel()

        # Not Deferred.addTimeout: cancelling a request in flight fails it
        # with ResponseNeverReceived, not CancelledError, and the timeout
        # must not look like a dropped connection (which is retried).
        timer = self._reactor.callLater(self._timeout, expire)
        try:
            return await d
        except Exception:
            if expired:
                raise _RequestTimeout() from None
            raise
        finally:
            if timer.active():
                timer.cancel()

    # -- glue ------------------------------------------------------------

    def _loop(self) -> asyncio.AbstractEventLoop:
        """Return the asyncio loop the reactor runs on (or the current one)."""
        loop = getattr(self._reactor, "_asyncioEventloop", None)
        if loop is not None:
            return loop  # type: ignore[no-any-return]
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.get_event_loop_policy().get_event_loop()

    def _note_error(self, message: str) -> None:
        self._last_error = message
        self._last_error_ts = self._reactor.seconds()


def _float(value: Any) -> float | None:
    """Return a JSON number as float (InfluxDB writes 5.0 as ``5``), keeping None."""
    return None if value is None else float(value)


def _never_answered(exc: Exception) -> bool:
    """Tell whether a request failed before any byte of the answer arrived."""
    from twisted.web._newclient import RequestNotSent, RequestTransmissionFailed, ResponseNeverReceived

    return isinstance(exc, (ResponseNeverReceived, RequestTransmissionFailed, RequestNotSent))


def _reason(exc: Exception) -> str:
    """Return a short text for a Twisted connection error, unwrapping wrapped failures."""
    reasons = getattr(exc, "reasons", None)
    if reasons:
        return "; ".join(str(getattr(r, "value", r)) for r in reasons)
    return str(exc) or type(exc).__name__
