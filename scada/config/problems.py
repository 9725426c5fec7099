# -*- test-case-name: tests.scada.config.test_config_load -*-
"""Problems found in configuration files, and where they are.

Every problem carries the file and the 1-based line it refers to, so that
``scada check`` prints ``FILE:LINE: message`` lines an editor can jump to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

Severity = Literal["error", "warning"]

#: Key of a value inside a parsed YAML document: mapping keys and list indexes.
Path = tuple[object, ...]


@dataclass(frozen=True)
class Problem:
    """One error or warning located at ``file:line``."""

    file: str
    line: int
    message: str
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        """Return True for an error, False for a warning."""
        return self.severity == "error"

    def __str__(self) -> str:
        """Return the ``FILE:LINE: message`` form printed by ``scada check``."""
        tag = "" if self.is_error else "warning: "
        return f"{self.file}:{self.line}: {tag}{self.message}"


def sort_problems(problems: Iterable[Problem], first_file: str = "") -> list[Problem]:
    """Return the problems without duplicates, ordered by file then line.

    Problems of ``first_file`` (the site file) come before those of profile
    files it pulled in, which is the order a reader fixes them in.
    """
    unique = dict.fromkeys(problems)
    return sorted(unique, key=lambda p: (p.file != first_file, p.file, p.line))


class ConfigError(Exception):
    """The configuration has at least one error.

    ``problems`` holds every problem found, warnings included, sorted by
    file and line, so a caller can print them all at once.
    """

    def __init__(self, problems: list[Problem]):
        """Keep the problems; the message is their printed form."""
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def errors(self) -> list[Problem]:
        """Return only the errors."""
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        """Return only the warnings."""
        return [p for p in self.problems if not p.is_error]


def show_value(value: object) -> str:
    """Return a value the way messages quote it: ``'X'``, ``300``, ``null``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_path(path: Path) -> str:
    """Return a path as written in messages, e.g. ``channels[0].devices[3].address``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and part and all(c.isalnum() or c in "_-" for c in part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "top level"


class SourceMap:
    """Remember where each validated model object came from.

    The cross-field checks receive model objects, not YAML nodes; this map
    lets them put a line number on a problem about, say, a device's
    ``address`` without the models carrying source positions.  Objects
    never registered (a model built in Python) get line 0 of ``<config>``.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._lines: dict[str, dict[Path, int]] = {}
        # The object itself is kept alongside its path so that its id()
        # cannot be reused by another object while the map is alive.
        self._where: dict[int, tuple[object, str, Path]] = {}

    def add_file(self, file: str, lines: dict[Path, int]) -> None:
        """Record the line table of one loaded YAML file."""
        self._lines[file] = lines

    def add(self, obj: object, file: str, path: Path) -> None:
        """Record that ``obj`` was validated from ``path`` in ``file``."""
        self._where[id(obj)] = (obj, file, path)

    def path(self, obj: object, *sub: object) -> Path:
        """Return the document path of ``obj`` (plus ``sub``), () if unknown."""
        entry = self._where.get(id(obj))
        return (entry[2] if entry else ()) + sub

    def file(self, obj: object) -> str:
        """Return the file ``obj`` came from."""
        entry = self._where.get(id(obj))
        return entry[1] if entry else "<config>"

    def line(self, obj: object, *sub: object) -> int:
        """Return the line of ``obj`` or of its field ``sub``, else the nearest parent's."""
        entry = self._where.get(id(obj))
        if entry is None:
            return 0
        return nearest_line(self._lines.get(entry[1], {}), entry[2] + sub)

    def where(self, obj: object, *sub: object) -> str:
        """Return the dotted path of ``obj`` (plus ``sub``) for messages."""
        return format_path(self.path(obj, *sub))

    def problem(
        self, obj: object, sub: tuple[object, ...], message: str, severity: Severity = "error"
    ) -> Problem:
        """Return a problem located at ``obj``'s field ``sub``."""
        return Problem(self.file(obj), self.line(obj, *sub), message, severity)


def nearest_line(lines: dict[Path, int], path: Path) -> int:
    """Return the line recorded for ``path``, else for its closest recorded parent."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return 1
