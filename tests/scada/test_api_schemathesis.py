"""Schemathesis against the whole API, in process: no 5xx, and answers that match the schemas declared.

The description is the app's own ``GET /api/v1/openapi.json``, so routes
added later (registry, reports, billing, ...) are fuzzed without a change
here.  Requests go through the app's ASGI interface on the test's event
loop (schemathesis's own ASGI transport runs the app on a thread of its
own, where the SQLite stores opened here cannot be used), over a runtime on
``task.Clock`` with a token per role (:mod:`tests.scada.api_site`).

As admin, every operation gets schemathesis's three phases: its declared
examples (real tags, alarms, buildings of the site), the coverage phase
(boundary values, missing and wrongly typed parameters, unexpected methods)
and hypothesis fuzzing with data that fits the schema (positive) and that
does not (negative); without credentials, a few positive examples.  Checks:
``not_a_server_error``, ``response_schema_conformance`` (where an answer's
schema is declared) and ``content_type_conformance``.

Marked ``integration`` for its run time (a few thousand requests, about
20 s), not because it needs a process: the unit suite has a one-minute
budget.  ``SCADA_FUZZ_EXAMPLES`` sets the fuzzed examples per operation and
mode (default 15); a failure prints hypothesis's seed to replay it.
"""

from __future__ import annotations

import io
import os
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
import urllib3
from argon2 import PasswordHasher
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from requests.adapters import HTTPAdapter
from schemathesis import GenerationMode, checks
from schemathesis.errors import FailureGroup

from scada import auth
from tests.scada.api_site import build_site

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("SCADA_FUZZ_EXAMPLES", "15"))
UNAUTHENTICATED_EXAMPLES = 3
#: Cases drawn from each declared example (the parameters it leaves open are generated).
EXAMPLE_DRAWS = 3
BASE_URL = "http://localhost"
CHECKS = [checks.not_a_server_error, checks.response_schema_conformance, checks.content_type_conformance]
_SETTINGS = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}


class _AppAdapter(HTTPAdapter):
    """A requests transport adapter that hands each request to the site's ASGI app on the site's loop."""

    def __init__(self, site) -> None:
        super().__init__()
        self.site = site

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        """Send ``request`` through the app; return its answer as a ``requests.Response``."""
        parts = urlsplit(request.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        reply = self.site.call(request.method, target, dict(request.headers), body)
        # schemathesis reads headers and the HTTP version from the urllib3 response behind a requests one.
        raw = urllib3.HTTPResponse(body=io.BytesIO(reply.body), headers=reply.raw_headers, status=reply.status,
                                   version=11, preload_content=False, request_method=request.method)
        return self.build_response(request, raw)


class _Fuzzer:
    """Runs schemathesis's phases over every operation, collecting failures instead of stopping at the first."""

    def __init__(self, schema, site, token: str | None) -> None:
        self.schema = schema
        self.session = requests.Session()
        self.session.mount("http://", _AppAdapter(site))
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.who = "admin" if token else "no credentials"
        self.failures: list[str] = []
        self.requests: Counter[str] = Counter()

    def call(self, case, phase: str) -> None:
        """Send one case and check its answer."""
        self.requests[phase] += 1
        case.call_and_validate(base_url=BASE_URL, session=self.session, headers=self.headers, checks=CHECKS)

    def run(self, phase: str, operation, body) -> None:
        """Run ``body()``; record a failure under the operation's name."""
        try:
            body()
        except Unsatisfiable:
            pass  # nothing to make invalid (no parameters, no body): the positive run covered it
        except (Exception, FailureGroup) as exc:  # noqa: BLE001 - every failure is collected and reported
            self.failures.append(f"{operation.label} [{phase}, {self.who}]: {exc}")

    def hypothesis(self, phase: str, operation, strategy, examples: int) -> None:
        """Draw ``examples`` cases from ``strategy`` (hypothesis shrinks a failing one) and call each."""
        @settings(max_examples=examples, phases=[Phase.generate, Phase.shrink], **_SETTINGS)
        @given(case=strategy)
        def test(case):
            self.call(case, phase)

        self.run(phase, operation, test)

    def operations(self):
        """Yield every operation of the description."""
        for result in self.schema.get_all_operations():
            yield result.ok()

    def examples(self, operation) -> None:
        """The examples phase: cases built from the parameters' and bodies' declared examples."""
        for strategy in self.schema.get_strategies_from_examples(operation):
            self.hypothesis("examples", operation, strategy, EXAMPLE_DRAWS)

    def coverage(self, operation) -> None:
        """The coverage phase: schemathesis's deterministic boundary and error cases (up to the first failure)."""
        def cases():
            config = self.schema.config.generation_for(operation=operation)
            for case in self.schema.iter_coverage_cases(operation, generation_modes=list(GenerationMode),
                                                       generation_config=config):
                self.call(case, "coverage")

        self.run("coverage", operation, cases)

    def fuzz(self, operation, mode: GenerationMode, examples: int) -> None:
        """The fuzzing phase: hypothesis over the operation's schemas, positive or negative."""
        self.hypothesis(mode.value, operation, operation.as_strategy(generation_mode=mode), examples)


@pytest.fixture()
def site(tmp_path, monkeypatch):
    """The whole-API site (auth on); logins hash with a cheap argon2 (they are fuzzed too)."""
    monkeypatch.setattr(auth, "PASSWORD_HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    built = build_site(tmp_path)
    yield built
    built.close()


def test_schemathesis_finds_no_server_errors(site):
    """Examples, coverage and fuzzing as admin, fuzzing without credentials: no 5xx, answers as declared."""
    spec = site.call("GET", "/api/v1/openapi.json")
    assert spec.status == 200
    schema = schemathesis.openapi.from_dict(spec.json)
    started = time.monotonic()
    admin = _Fuzzer(schema, site, site.tokens["admin"])
    anonymous = _Fuzzer(schema, site, None)
    operations = list(admin.operations())
    for operation in operations:
        admin.examples(operation)
        admin.coverage(operation)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            admin.fuzz(operation, mode, EXAMPLES)
        anonymous.fuzz(operation, GenerationMode.POSITIVE, UNAUTHENTICATED_EXAMPLES)
    sent = admin.requests + anonymous.requests
    print(f"\nschemathesis: {sum(sent.values())} requests ({', '.join(f'{k} {v}' for k, v in sent.items())}) "
          f"over {len(operations)} operations in {time.monotonic() - started:.1f} s")
    assert len(operations) >= 30 and sent["coverage"] > 0 and sent["examples"] > 0
    failures = admin.failures + anonymous.failures
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures)
