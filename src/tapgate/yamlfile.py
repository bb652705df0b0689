"""Read administrator-written YAML safely: no aliases, bounded nesting, clear errors.

PyYAML's safe loader still expands aliases, so a few hundred bytes can describe billions of
nodes (the "billion laughs" file); tapgate's files never need aliases, so they are rejected.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

_INT_TAG = "tag:yaml.org,2002:int"
# YAML 1.2's integers. PyYAML follows YAML 1.1, where `030` is octal (24), `1:00` is base 60 (60)
# and `1_000` is 1000, so a value an administrator meant as thirty days would silently be another.
_YAML12_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not supported", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # PyYAML keeps the last of two equal keys, so a repeated `listen:` or `name:` would
        # silently replace the first. YAML requires the keys of a mapping to be unique.
        first_lines: dict[Any, int] = {}
        for key_node, _value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                # `<<:` merges another mapping, whose keys the explicit ones may override.
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                # The parent class reports unhashable keys.
                continue
            line = key_node.start_mark.line + 1
            if key in first_lines:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first_lines[key]}); keep one of them",
                    key_node.start_mark,
                )
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


# Resolvers are a class attribute shared with SafeLoader, so this loader gets its own copy
# before YAML 1.1's integer rule is replaced.
_NoAliasLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _INT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_NoAliasLoader.add_implicit_resolver(_INT_TAG, _YAML12_INT, list("-+0123456789"))
_NoAliasLoader.add_constructor(_INT_TAG, _construct_int)


class YamlFileError(Exception):
    """A YAML file that cannot be read or parsed; the message names the file and the fault."""


def load_yaml_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlFileError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise YamlFileError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        # PyYAML's own text names the source "<unicode string>", since it parsed a string.
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or "invalid syntax"
        context = f" ({exc.context})" if exc.context else ""
        raise YamlFileError(
            f"{path} is not valid YAML{where}: {problem[:300]}{context[:200]}"
        ) from exc
    except yaml.YAMLError as exc:
        raise YamlFileError(f"{path} is not valid YAML: {str(exc)[:500]}") from exc
    except (ValueError, RecursionError) as exc:
        # Integers over Python's digit limit and very deep nesting end up here.
        raise YamlFileError(f"{path} contains an unsupported value: {str(exc)[:200]}") from exc
