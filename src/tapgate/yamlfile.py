"""Read administrator-written YAML safely: no aliases, bounded nesting, clear errors.

PyYAML's safe loader still expands aliases, so a few hundred bytes can describe billions of
nodes (the "billion laughs" file); tapgate's files never need aliases, so they are rejected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not supported", event.start_mark
            )
        return super().compose_node(parent, index)


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
    except yaml.YAMLError as exc:
        raise YamlFileError(f"{path} is not valid YAML: {str(exc)[:500]}") from exc
    except (ValueError, RecursionError) as exc:
        # Integers over Python's digit limit and very deep nesting end up here.
        raise YamlFileError(f"{path} contains an unsupported value: {str(exc)[:200]}") from exc
