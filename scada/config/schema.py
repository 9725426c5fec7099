# -*- test-case-name: tests.scada.config.test_config_schema -*-
"""JSON Schema of site and profile files, for editors (YAML language server) and other tools.

The files in ``config/schema/`` are generated from the models by
``scada schema --write``; a test fails when they fall behind the models.
"""

from __future__ import annotations

import json
from pathlib import Path

from .model import ProfileConfig, SiteConfig

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "config" / "schema"
SCHEMAS = {"site.schema.json": SiteConfig, "profile.schema.json": ProfileConfig}


def render(name: str) -> str:
    """Return the JSON Schema text of one file in :data:`SCHEMAS`."""
    model = SCHEMAS[name]
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$id": f"scada-metering/{name}", **model.model_json_schema()}
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SCHEMAS:
        path = directory / name
        path.write_text(render(name), encoding="utf-8")
        paths.append(path)
    return paths
