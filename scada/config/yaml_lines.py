# -*- test-case-name: tests.scada.config.test_config_yaml_lines -*-
"""Load YAML safely and remember the line of every key and list item.

Pydantic reports errors by path (``("channels", 0, "devices", 3,
"address")``); the table built here turns such a path into the 1-based line
a user should look at.
"""

from __future__ import annotations

from typing import Any, Mapping

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .envvars import substitute
from .problems import Path, Problem, format_path

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


# libyaml parses about ten times faster and gives the same nodes and marks;
# the pure-Python loader is the fallback where PyYAML was built without it.
_SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LineLoader(_SafeBase):
    """A SafeLoader that also maps document paths to source lines.

    Construction is PyYAML's own; :meth:`line_table` walks the composed
    node tree afterwards because only there are a value's path and its
    position both known.  Duplicate keys, which PyYAML silently resolves
    to the last one, are reported as problems.  With ``environ``, the
    ``${NAME}`` references in string values (not keys) are resolved from
    it (:mod:`scada.config.envvars`).
    """

    def __init__(self, stream: str, file: str, environ: Mapping[str, str] | None = None):
        """Prepare to load ``stream``; ``file`` is used in problems."""
        super().__init__(stream)
        self.file = file
        self.lines: dict[Path, int] = {}
        self.problems: list[Problem] = []
        self.environ = environ
        # Resolved string values by scalar node; the str constructor picks them up.
        self._resolved: dict[int, str] = {}

    def load(self) -> Any:
        """Return the single document's data (None if empty), filling ``lines``."""
        node = self.get_single_node()
        if node is None:
            return None
        # Walk before constructing: construction flattens `<<` merges in
        # place, after which merged keys would look like duplicates.
        self.lines[()] = node.start_mark.line + 1
        self._walk(node, (), set())
        return self.construct_document(node)

    def _key(self, node: Node) -> object:
        """Return the constructed value of a scalar key node, else None."""
        if not isinstance(node, ScalarNode):
            return None
        # Keys are scalars, so constructing them again is cheap and side-effect free.
        return self.construct_object(node)

    def _walk(self, node: Node, path: Path, seen: set[int]) -> None:
        """Record lines below ``node``, which sits at ``path``."""
        # Aliases make the tree a graph; each node is expanded only where it
        # first appears, so recursive anchors and alias bombs stay cheap.
        # Paths below a later alias fall back to the alias's own line.
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self.lines[path + (index,)] = item.start_mark.line + 1
                self._walk(item, path + (index,), seen)
        elif isinstance(node, MappingNode):
            self._walk_mapping(node, path, seen)
        elif self.environ is not None and node.tag == _STR_TAG and "${" in node.value:
            self._resolve(node)

    def _resolve(self, node: ScalarNode) -> None:
        """Resolve the environment references of one string value, recording problems at their lines."""
        value, problems = substitute(node.value, self.environ or {})
        self._resolved[id(node)] = value
        for offset, message in problems:
            line = node.start_mark.line + 1
            if node.style == "|":  # a literal block keeps its lines; its text starts below the `|`
                line += 1 + node.value.count("\n", 0, offset)
            self.problems.append(Problem(self.file, line, message))

    def _construct_str(self, node: ScalarNode) -> str:
        """Construct a string value, resolved if it held environment references."""
        resolved = self._resolved.get(id(node))
        return resolved if resolved is not None else self.construct_yaml_str(node)

    def _walk_mapping(self, node: MappingNode, path: Path, expanded: set[int]) -> None:
        """Record lines of a mapping's keys, including keys pulled in by ``<<``."""
        seen: dict[object, int] = {}
        merged: list[tuple[Node, Node, int]] = []
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if isinstance(source, MappingNode):
                        merged.extend((k, v, line) for k, v in source.value)
                continue
            key = self._key(key_node)
            try:
                first = seen.get(key)
            except TypeError:
                continue
            if first is not None:
                self.problems.append(
                    Problem(
                        self.file,
                        line,
                        f"duplicate key {key!r} in {format_path(path)} (first at line {first}); "
                        "only the last one would count",
                    )
                )
            seen[key] = line
            self.lines[path + (key,)] = line
            self._walk(value_node, path + (key,), expanded)
        # Explicit keys override merged ones; a merged key points at the `<<` line.
        for key_node, value_node, line in merged:
            key = self._key(key_node)
            try:
                if key in seen:
                    continue
            except TypeError:
                continue
            seen[key] = line
            self.lines[path + (key,)] = line
            self._walk(value_node, path + (key,), expanded)


LineLoader.add_constructor(_STR_TAG, LineLoader._construct_str)


def load_yaml(text: str, file: str, environ: Mapping[str, str] | None = None
              ) -> tuple[Any, dict[Path, int], list[Problem]]:
    """Parse one YAML document.

    Return ``(data, lines, problems)``: the data (None for an empty
    document), the line table, duplicate-key problems and, with
    ``environ``, unresolvable environment references.  Syntax errors
    propagate as :class:`yaml.YAMLError`.
    """
    loader = LineLoader(text, file, environ)
    try:
        data = loader.load()
    finally:
        loader.dispose()
    return data, loader.lines, loader.problems
