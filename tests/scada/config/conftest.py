"""Fixtures for the site configuration tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from scada.config import loader


@pytest.fixture(autouse=True)
def builtin_profiles(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the built-in profile directory at an empty temporary one.

    The real ``config/profiles`` is being filled by others; tests must not
    depend on what is in it.  A test may write profile files here.
    """
    directory = tmp_path_factory.mktemp("builtin_profiles")
    monkeypatch.setattr(loader, "BUILTIN_PROFILES_DIR", directory)
    return directory


@pytest.fixture
def write(tmp_path: Path):
    """Return a function writing dedented YAML text to a file under tmp_path."""

    def write_file(text: str, name: str = "site.yaml", directory: Path | None = None) -> Path:
        """Write ``text`` as ``directory/name`` (default tmp_path) and return the path."""
        path = (directory or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write_file


@pytest.fixture
def line_of():
    """Return a function giving the 1-based line of a text in a file.

    ``line_of(path, needle, occurrence=1)`` finds the ``occurrence``-th line
    containing ``needle``; tests use it so expected line numbers follow the
    YAML written instead of being counted by hand.
    """

    def find(path: Path, needle: str, occurrence: int = 1) -> int:
        """Return the line number of the match."""
        found = [n for n, text in enumerate(path.read_text().splitlines(), 1) if needle in text]
        return found[occurrence - 1]

    return find
