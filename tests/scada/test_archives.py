"""The archive book on disk (scada/archives.py): persistence, atomic writes, unusable files."""

from __future__ import annotations

import json
import logging
import os
import textwrap

import pytest
from twisted.internet.testing import MemoryReactorClock

from scada.app import Runtime
from scada.archives import FileArchiveBook
from scada.config import load_config


def test_entries_survive_a_restart(tmp_path):
    """What was stored and saved is there when the book is loaded again."""
    path = tmp_path / "var" / "archives.json"
    book = FileArchiveBook(path)
    assert book.newest("m1", "hourly") is None and book.load_error == ""
    book.stored("m1", "hourly", 1763712000.0)
    book.stored("m1", "daily", 1763672400.0)
    book.stored("m2", "monthly", 1761944400.0)
    book.save()
    again = FileArchiveBook(path)
    assert again.newest("m1", "hourly") == 1763712000.0
    assert again.archives("m1") == ["daily", "hourly"] and again.newest("m2", "monthly") == 1761944400.0
    assert json.loads(path.read_text()) == {"version": 1, "devices": {
        "m1": {"daily": 1763672400.0, "hourly": 1763712000.0}, "m2": {"monthly": 1761944400.0}}}


def test_save_writes_only_after_a_change(tmp_path):
    """An unchanged book is not written again; an entry that did not move is no change."""
    path = tmp_path / "archives.json"
    book = FileArchiveBook(path)
    book.save()
    assert not path.exists() and book.saves == 0
    book.stored("m1", "hourly", 100.0)
    book.save()
    book.stored("m1", "hourly", 50.0)  # older: the entry stays
    book.save()
    assert book.saves == 1
    mtime = path.stat().st_mtime_ns
    book.stored("m1", "hourly", 200.0)
    book.save()
    assert book.saves == 2 and json.loads(path.read_text())["devices"]["m1"]["hourly"] == 200.0
    assert path.stat().st_mtime_ns >= mtime


def test_write_is_atomic_temp_then_rename(tmp_path, monkeypatch):
    """The new book goes to a temporary file that replaces the old one; a failed write leaves the old one."""
    path = tmp_path / "archives.json"
    book = FileArchiveBook(path)
    book.stored("m1", "hourly", 100.0)
    book.save()
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: replaced.append((str(src), str(dst))) or real_replace(src, dst))
    book.stored("m1", "hourly", 200.0)
    book.save()
    assert replaced == [(str(path) + ".tmp", str(path))]

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    book.stored("m1", "hourly", 300.0)
    with pytest.raises(OSError):
        book.save()
    assert json.loads(path.read_text())["devices"]["m1"]["hourly"] == 200.0  # the old book, whole
    monkeypatch.setattr(os, "replace", real_replace)
    book.save()  # still dirty: the next save writes it
    assert json.loads(path.read_text())["devices"]["m1"]["hourly"] == 300.0


@pytest.mark.parametrize("content, why", [
    ("{not json", "Expecting property name"),
    ('{"version": 2, "devices": {}}', "not a version 1 archive book"),
    ('{"version": 1, "devices": []}', "'devices' is not a mapping"),
    ('{"version": 1, "devices": {"m1": 5}}', "device 'm1': not a mapping"),
    ('{"version": 1, "devices": {"m1": {"hourly": "yesterday"}}}', "'yesterday' is not a time"),
    ('{"version": 1, "devices": {"m1": {"hourly": NaN}}}', "nan is not a time"),
])
def test_an_unusable_file_is_logged_and_ignored(tmp_path, caplog, content, why):
    """A corrupt book is no crash: logged, the book starts empty, and the next save replaces it."""
    path = tmp_path / "archives.json"
    path.write_text(content)
    with caplog.at_level(logging.ERROR, logger="scada.archives"):
        book = FileArchiveBook(path)
    assert book.entries == {} and why in book.load_error
    assert any("unusable" in r.getMessage() and why in r.getMessage() for r in caplog.records)
    book.stored("m1", "hourly", 100.0)
    book.save()
    assert FileArchiveBook(path).newest("m1", "hourly") == 100.0


def test_a_book_that_is_not_utf8_is_ignored(tmp_path):
    path = tmp_path / "archives.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    book = FileArchiveBook(path)
    assert book.entries == {} and "cannot read it" in book.load_error


def test_runtime_keeps_the_book_under_var(tmp_path):
    """The runtime loads var/archives.json beside its history and shares it with its channels."""
    site = tmp_path / "site.yaml"
    site.write_text(textwrap.dedent("""\
        site: {name: book}
        history: {backend: sqlite, path: var/h.db}
        channels:
          - name: gw
            type: modbus-rtu
            transport: {tcp: 127.0.0.1:1}
            devices:
              - {name: m1, address: 1, profile: generic_water_meter, poll: 10s}
        """))
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "archives.json").write_text('{"version": 1, "devices": {"m1": {"hourly": 123.0}}}')
    cfg, _ = load_config(site)
    runtime = Runtime(cfg, MemoryReactorClock(), base_dir=tmp_path)
    try:
        assert runtime.archive_book.path == tmp_path / "var" / "archives.json"
        device = runtime.channels[0].devices[0]
        assert device.archive_book is runtime.archive_book
        assert device.health()["archive_newest"]["hourly"] == 123.0
        assert [s.name for s in device.archive_specs()] == ["hourly", "daily", "monthly"]
    finally:
        runtime.historian.close()
