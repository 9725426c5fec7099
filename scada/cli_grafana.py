# -*- test-case-name: tests.scada.test_grafana -*-
"""``scada grafana export`` and ``scada grafana push``: the site's dashboards for Grafana.

::

    scada grafana export DIR [-c FILE] [--influx-url URL] [--provider-path PATH] [--lang ru|en]
    scada grafana push --url URL --token TOKEN [-c FILE] [--influx-url URL] [--folder SCADA] [--lang ru|en]

``export`` writes provisioning files for Grafana to read at start
(:mod:`scada.grafana.export`); ``push`` uploads the same data source and
dashboards to a running Grafana (:mod:`scada.grafana.push`).  Both print
one line per file or object, warnings (a site on SQLite, a meter whose
tags are only known at run time) on stderr; config problems and failures
are printed as one line each, exit status 1.
"""

from __future__ import annotations

import os
import sys


def _bundle(args, secrets: str):
    """Load the site and build its data source and dashboards, or print why not; None on failure."""
    from scada.cli import _load

    cfg = _load(args.config)
    if cfg is None:
        return None
    from scada.grafana.model import build

    lang = args.lang or getattr(getattr(cfg, "hmi", None), "lang", None) or "ru"
    if args.influx_url is not None:
        from scada.grafana.push import PushError, check_url

        try:
            check_url(args.influx_url)
        except PushError:
            print(f"--influx-url {args.influx_url!r}: not an InfluxDB URL such as http://influxdb:8086",
                  file=sys.stderr)
            return None
    bundle = build(cfg, lang, args.influx_url, secrets)
    for warning in bundle.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return bundle


def cmd_export(args) -> int:
    """Write the site's Grafana provisioning files under DIR."""
    bundle = _bundle(args, "env")
    if bundle is None:
        return 1
    from scada.grafana.export import export

    try:
        lines = export(bundle, args.dir, args.provider_path)
    except OSError as exc:
        print(f"{args.dir}: cannot write the provisioning files: {exc.strerror or exc}"
              + (f" ({exc.filename})" if exc.filename else ""), file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


def cmd_push(args) -> int:
    """Upload the site's data source, folder and dashboards to a running Grafana."""
    from scada.grafana.push import PushError, check_url, push

    if args.token is None:
        print("--token is missing: give a Grafana service account token (or set GRAFANA_TOKEN)", file=sys.stderr)
        return 1
    try:
        check_url(args.url)  # before loading the site: a typo in the URL is said at once
    except PushError as exc:
        print(exc, file=sys.stderr)
        return 1
    bundle = _bundle(args, "values")
    if bundle is None:
        return 1
    try:
        lines = push(bundle, args.url, args.token, args.folder)
    except PushError as exc:
        print(exc, file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


def add_parser(sub) -> None:
    """Add ``scada grafana {export,push}`` to the ``scada`` command's subparsers."""
    from scada.cli import _default_config
    from scada.grafana.model import FOLDER
    from scada.grafana.texts import LANGUAGES

    p = sub.add_parser("grafana", help="Grafana data source and dashboards of the site (export, push)")
    grafana = p.add_subparsers(dest="grafana_command", required=True)

    def common(q) -> None:
        q.add_argument("-c", "--config", default=_default_config(), help="site YAML (default: %(default)s)")
        q.add_argument("--influx-url", help="InfluxDB URL as Grafana reaches it (default: history.url)")
        q.add_argument("--lang", choices=LANGUAGES, help="language of titles (default: hmi.lang of the site, ru)")

    q = grafana.add_parser("export", help="write provisioning files (data source, dashboard provider, dashboards)")
    q.add_argument("dir", help="Grafana's provisioning folder, e.g. /etc/grafana/provisioning")
    common(q)
    q.add_argument("--provider-path",
                   help="where Grafana finds DIR/dashboards (default: its absolute path here)")
    q.set_defaults(func=cmd_export)

    q = grafana.add_parser("push", help="upload data source, folder and dashboards through Grafana's HTTP API")
    q.add_argument("--url", required=True, help="Grafana's URL, e.g. http://127.0.0.1:3000")
    q.add_argument("--token", default=os.environ.get("GRAFANA_TOKEN"),
                   help="service account token (default: $GRAFANA_TOKEN)")
    common(q)
    q.add_argument("--folder", default=FOLDER, help="folder of the dashboards (default: %(default)s)")
    q.set_defaults(func=cmd_push)
