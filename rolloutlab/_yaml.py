"""YAML (and JSON) read safely: PyYAML's safe loader within bounds, so that a few hundred
bytes cannot exhaust the machine, duplicate keys refused, and every problem a
:class:`~rolloutlab.errors.SpecError` naming the file and line. Specs, manifests and query
files are read with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rolloutlab.errors import SpecError

#: Bounds on a YAML or JSON input, so that a few hundred bytes cannot take the machine:
#: its size, how deep it nests, how large it is once aliases are expanded (the "billion
#: laughs": in nodes, a text counting one more per 64 characters), and how many digits a
#: number may have.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_NUMBER_CHARS = 40


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader within the bounds above, refusing duplicate keys."""

    def __init__(self, text: str, where: str) -> None:
        super().__init__(text)
        self.where = where
        self.depth = 0

    def fail(self, node_or_mark: Any, what: str, fix: str) -> SpecError:
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        return SpecError(f"{self.where}, line {mark.line + 1}: {what}. {fix}")

    def too_deep(self, mark: Any) -> SpecError:
        return self.fail(
            mark,
            f"nested more than {MAX_DEPTH} levels deep",
            "A spec or manifest is never this deep: check the file.",
        )

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        # Checked as the text is scanned: the scanner reads a whole nest of [ and { before
        # the composer sees any of it, in time quadratic in its depth.
        if self.flow_level >= MAX_DEPTH:
            raise self.too_deep(self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise self.too_deep(self.peek_event())
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None and _expanded_size(node, {}, set(), 0) > MAX_NODES:
            raise self.fail(
                node,
                f"larger than {MAX_NODES} values, or deeper than {MAX_DEPTH} levels, once "
                "its aliases (*name) are expanded",
                "Write the values out, or use fewer aliases.",
            )
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:
                    continue  # an unhashable key: PyYAML says so itself
                if first != key_node.start_mark.line + 1:
                    raise self.fail(
                        key_node,
                        f"key {str(key)[:80]!r} is given twice (first on line {first})",
                        "Keep one of them: YAML would silently use the last.",
                    )
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> int:
        if len(node.value) > MAX_NUMBER_CHARS:
            raise self.fail(
                node,
                f"the number {node.value[:20]}… has more than {MAX_NUMBER_CHARS} characters",
                "Write a number of a sensible size.",
            )
        return super().construct_yaml_int(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def _expanded_size(node: Any, sizes: dict[int, int], open_: set[int], depth: int) -> int:
    """The size of ``node`` with each alias counted as a copy (memoised: aliases share
    nodes); over ``MAX_NODES`` when it nests deeper than ``MAX_DEPTH``."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_ or depth > MAX_DEPTH:
        return MAX_NODES + 1  # a recursive alias expands for ever
    open_.add(key)
    children: list[Any] = []
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    total = 1 + len(node.value) // 64 if isinstance(node, yaml.ScalarNode) else 1
    for child in children:
        total += _expanded_size(child, sizes, open_, depth + 1)
        if total > MAX_NODES:
            break
    open_.discard(key)
    sizes[key] = total
    return total


def load_yaml(text: str, where: str) -> list[Any]:
    """The documents of YAML (or JSON) ``text``, within the bounds above; any problem is
    a :class:`SpecError` naming ``where`` and the line."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise SpecError(
            f"{where}: {len(text)} characters, more than the {MAX_DOCUMENT_BYTES} a spec may "
            "have. Check that this is the right file."
        )
    loader = None
    try:
        loader = _BoundedLoader(text, where)  # its reader refuses unprintable characters
        docs = []
        while loader.check_data():
            docs.append(loader.get_data())
        return docs
    except SpecError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f", line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}{at}: not valid YAML ({str(problem)[:300]}).") from None
    except (ValueError, RecursionError, OverflowError) as exc:  # a scalar PyYAML cannot make
        raise SpecError(f"{where}: a value cannot be read ({str(exc)[:200]}).") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_text(path: Path) -> str:
    """A spec file's text: a :class:`SpecError` when it is too large, unreadable or not
    UTF-8."""
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise SpecError(
                f"{path}: {size} bytes, more than the {MAX_DOCUMENT_BYTES} a spec may have. "
                "Check that this is the right file."
            )
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}). "
            "Save the file as UTF-8."
        ) from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read it ({exc.strerror or exc}).") from None
