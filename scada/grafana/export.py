# -*- test-case-name: tests.scada.test_grafana -*-
"""``scada grafana export DIR``: the site's data source and dashboards as Grafana provisioning files.

::

    DIR/datasources/scada.yaml     the InfluxDB data source (InfluxQL), uid scada-influxdb
    DIR/dashboards/scada.yaml      a file provider: folder SCADA, options.path = the JSON files' folder
    DIR/dashboards/scada-*.json    overview, one per building, channel health

``DIR`` is what Grafana reads as ``/etc/grafana/provisioning`` (its
``paths.provisioning``).  The provider's ``options.path`` is the absolute
path of ``DIR/dashboards`` unless ``--provider-path`` names where Grafana
sees that folder (another container, another mount point).  Dashboards
this command wrote before and no longer writes (a building removed from
the registry) are deleted; other files are left alone.  Empty ``alerting/``
and ``plugins/`` folders keep Grafana from logging errors about them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from scada.grafana.model import FOLDER, Bundle, folder_uid

#: Files this command owns in DIR/dashboards (old ones it may delete).
OWN_PATTERN = "scada-*.json"
#: Folders Grafana reads at every start and logs an error for when they are missing (a volume
#: mounted over /etc/grafana/provisioning has only what this command writes); left empty.
EMPTY_DIRS = ("alerting", "plugins")


def datasource_file(bundle: Bundle) -> dict[str, Any]:
    """Return the content of ``datasources/scada.yaml`` (Grafana's provisioning ``apiVersion: 1``)."""
    source = dict(bundle.datasource)
    source.pop("isDefault", None)
    # Provisioned data sources cannot be changed in the UI; the file is the truth.
    return {"apiVersion": 1, "datasources": [{"orgId": 1, **source, "editable": False}]}


def provider_file(path: str) -> dict[str, Any]:
    """Return the content of ``dashboards/scada.yaml``: one file provider reading ``path``."""
    return {"apiVersion": 1, "providers": [{
        "name": "scada", "orgId": 1, "folder": FOLDER, "folderUid": folder_uid(FOLDER), "type": "file",
        "disableDeletion": False, "allowUiUpdates": False, "updateIntervalSeconds": 60,
        "options": {"path": path, "foldersFromFilesStructure": False}}]}


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so Grafana never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def export(bundle: Bundle, directory: str | os.PathLike[str], provider_path: str | None = None) -> list[str]:
    """Write the provisioning files of ``bundle`` under ``directory``; return one line per file written or removed."""
    root = Path(directory)
    sources, boards = root / "datasources", root / "dashboards"
    sources.mkdir(parents=True, exist_ok=True)
    boards.mkdir(parents=True, exist_ok=True)
    for empty in EMPTY_DIRS:
        (root / empty).mkdir(exist_ok=True)
    lines = []
    target = sources / "scada.yaml"
    _write(target, "# Written by `scada grafana export`; edits are overwritten.\n"
                   + yaml.safe_dump(datasource_file(bundle), allow_unicode=True, sort_keys=False))
    lines.append(f"wrote {target} (data source {bundle.datasource['uid']}: {bundle.datasource['url']})")
    target = boards / "scada.yaml"
    path = provider_path or str(boards.resolve())
    _write(target, "# Written by `scada grafana export`; edits are overwritten.\n"
                   + yaml.safe_dump(provider_file(path), allow_unicode=True, sort_keys=False))
    lines.append(f"wrote {target} (folder {FOLDER}, dashboards from {path})")
    written = set()
    for dashboard in bundle.dashboards:
        target = boards / f"{dashboard['uid']}.json"
        _write(target, json.dumps(dashboard, ensure_ascii=False, indent=2) + "\n")
        written.add(target.name)
        lines.append(f"wrote {target} ({dashboard['title']}, {len(dashboard['panels'])} panels)")
    for old in sorted(boards.glob(OWN_PATTERN)):
        if old.name not in written:
            old.unlink()
            lines.append(f"removed {old} (no longer on the site)")
    return lines
