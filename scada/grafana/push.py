# -*- test-case-name: tests.integration.test_grafana_push -*-
"""``scada grafana push``: upload the data source, folder and dashboards through Grafana's HTTP API.

Uses the ``grafana-client`` package (the optional ``grafana`` extra):

1. the data source by uid ``scada-influxdb``: ``GET /api/datasources/uid/scada-influxdb``,
   then ``PUT`` there when it exists, else ``POST /api/datasources``;
2. the folder: ``GET /api/folders/<uid>``, else ``POST /api/folders``;
3. each dashboard: ``POST /api/dashboards/db`` with ``overwrite: true`` and the folder's uid.

Every request carries ``Authorization: Bearer <token>`` (a service account
token: Admin for the data source, Editor is enough for the rest).  Unlike
the provisioning files, the data source gets the site's own InfluxDB
credentials: there is no environment to expand on the far side.

Failures (401, 403, another error answer, a refused connection, a bad URL)
raise :class:`PushError` with one line for the user; nothing else escapes.
"""

from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from scada.grafana.model import FOLDER, Bundle, folder_uid

#: What to install when grafana-client is missing.
INSTALL_HINT = "pip install 'scada-metering[grafana]'"
#: Seconds each request may take (connect and answer).
TIMEOUT_S = 10.0


class PushError(Exception):
    """``push`` failed; the message is one line naming what and why."""


def check_url(url: str) -> str:
    """Return Grafana's base URL with a trailing ``/``; PushError for anything but ``http(s)://host[:port][/path]``."""
    try:
        # urlsplit and .hostname raise ValueError on a bracket left open ("http://[::1"), .port on "host:x".
        parts = urlsplit(url.strip()) if url else None
        host_ok = parts is not None and bool(parts.hostname)
        port_ok = parts is not None and (parts.port is None or 0 < parts.port < 65536)
    except ValueError:
        parts, host_ok, port_ok = None, False, False
    if parts is None or parts.scheme not in ("http", "https") or not host_ok or not port_ok:
        raise PushError(f"--url {url!r}: not a Grafana URL such as http://grafana:3000 or https://example.org/grafana/")
    # grafana-client appends "api" to the path, so a sub-path needs its trailing slash.
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _reason(exc: BaseException) -> str:
    """Return the root cause of a connection failure in a few words (not urllib3's whole story)."""
    text = " ".join(str(exc).split())
    for pattern in (r"\[Errno -?\d+\] ([^'\")\]]+)", r"(Connection refused|Name or service not known|"
                    r"Temporary failure in name resolution|No route to host|timed out|certificate verify failed"
                    r"[^'\")]*)"):
        found = re.search(pattern, text)
        if found:
            return found.group(1).strip()
    return text[:200] or type(exc).__name__


class _Session:
    """One push: the client, the URL for messages, and the translation of errors into one line."""

    def __init__(self, api: Any, url: str, errors: Any) -> None:
        self.api = api
        self.url = url.rstrip("/")
        self.errors = errors

    def call(self, doing: str, fn: Callable[..., Any], *args: Any, missing_ok: bool = False) -> Any:
        """Run one API call; PushError with one line on failure (None for a 404 when ``missing_ok``)."""
        errors = self.errors
        try:
            answer = fn(*args)
            if answer is not None and not isinstance(answer, (dict, list)):
                # grafana-client hands text answers back as they are: a web page, not the API.
                raise ValueError(f"a {type(answer).__name__} answer: {str(answer)[:80]!r}")
            return answer
        except errors.GrafanaTimeoutError:
            raise PushError(f"Grafana at {self.url} did not answer within {TIMEOUT_S:g} s ({doing})") from None
        except errors.GrafanaClientError as exc:
            status = exc.status_code
            if status == 404 and missing_ok:
                return None
            message = _message(exc)
            if status == 401:
                raise PushError(f"Grafana at {self.url} refused the token: 401 Unauthorized ({doing}); give a "
                                "service account token with --token or GRAFANA_TOKEN") from None
            if status == 403:
                raise PushError(f"Grafana at {self.url} does not let this token do that: 403 Forbidden ({doing}: "
                                f"{message}); the data source needs an Admin token, folders and dashboards "
                                "an Editor") from None
            raise PushError(f"Grafana at {self.url} answered {status} ({doing}): {message}") from None
        except errors.GrafanaServerError as exc:
            raise PushError(f"Grafana at {self.url} failed: {exc.status_code} ({doing}): {_message(exc)}") from None
        except errors.GrafanaException as exc:  # transport errors grafana-client wraps (status 0)
            raise PushError(f"cannot reach Grafana at {self.url}: {_reason(exc)} ({doing})") from None
        except errors.RequestException as exc:  # refused, DNS, TLS: requests' own
            raise PushError(f"cannot reach Grafana at {self.url}: {_reason(exc)} ({doing})") from None
        except ValueError as exc:  # an answer that is not JSON: not Grafana's API at that URL
            raise PushError(f"{self.url} does not answer like Grafana's API ({doing}): {_reason(exc)}") from None


def _message(exc: Any) -> str:
    body = getattr(exc, "response", None)
    if isinstance(body, dict) and body.get("message"):
        return " ".join(str(body["message"]).split())[:300]
    text = " ".join(str(body or exc).split())
    return text[:300]


class _Errors:
    """The exception classes of grafana-client and requests, imported once they are known to be there."""

    def __init__(self) -> None:
        from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaServerError
        from requests.exceptions import RequestException
        from requests.exceptions import Timeout as GrafanaTimeoutError

        self.GrafanaClientError = GrafanaClientError
        self.GrafanaException = GrafanaException
        self.GrafanaServerError = GrafanaServerError
        self.GrafanaTimeoutError = GrafanaTimeoutError
        self.RequestException = RequestException


def push(bundle: Bundle, url: str, token: str, folder: str = FOLDER) -> list[str]:
    """Upload ``bundle`` to the Grafana at ``url`` with ``token``; return one line per object; PushError on failure."""
    base = check_url(url)
    if not token or not token.strip():
        raise PushError("--token is empty: give a Grafana service account token (or set GRAFANA_TOKEN)")
    if not folder or not folder.strip():
        raise PushError("--folder is empty: give the title of the dashboards' folder, e.g. SCADA")
    try:
        from grafana_client import GrafanaApi

        errors = _Errors()
    except ImportError:
        raise PushError(f"scada grafana push needs the grafana-client package: {INSTALL_HINT}") from None
    api = GrafanaApi.from_url(base, credential=token.strip(), timeout=TIMEOUT_S)
    session = _Session(api, base, errors)
    parts = urlsplit(base)
    origin = f"{parts.scheme}://{parts.netloc}"
    lines = []

    source = bundle.datasource
    uid = source["uid"]
    existing = session.call(f"looking up data source {uid}", api.datasource.get_datasource_by_uid, uid,
                            missing_ok=True)
    if existing is None:
        session.call(f"creating data source {uid}", api.datasource.create_datasource, source)
        lines.append(f"data source {uid} ({source['name']}): created, {source['url']}")
    else:
        session.call(f"updating data source {uid}", api.datasource.update_datasource_by_uid, uid, source)
        lines.append(f"data source {uid} ({source['name']}): updated, {source['url']}")

    fuid = folder_uid(folder)
    found = session.call(f"looking up folder {fuid}", api.folder.get_folder, fuid, missing_ok=True)
    if found is None:
        session.call(f"creating folder {folder!r}", api.folder.create_folder, folder, fuid)
        lines.append(f"folder {folder} ({fuid}): created")
    else:
        lines.append(f"folder {folder} ({fuid}): exists")

    for dashboard in bundle.dashboards:
        body = {"dashboard": {**dashboard, "id": None}, "folderUid": fuid, "overwrite": True,
                "message": "scada grafana push"}
        answer = session.call(f"saving dashboard {dashboard['uid']}", api.dashboard.update_dashboard, body)
        where = answer.get("url") if isinstance(answer, dict) else None
        # Grafana answers the dashboard's path from its root (sub-path included).
        shown = f"{origin}{where}" if isinstance(where, str) and where.startswith("/") else \
            f"{base.rstrip('/')}/d/{dashboard['uid']}"
        lines.append(f"dashboard {dashboard['uid']} ({dashboard['title']}): saved, {shown}")
    return lines
