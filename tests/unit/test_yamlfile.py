"""Administrator YAML: integers read as YAML 1.2 reads them, aliases and duplicate keys rejected."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapgate.errors import ConfigError
from tapgate.relay.config import load_relay_settings
from tapgate.yamlfile import YamlFileError, load_yaml_file


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "nesneler.yaml"
    path.write_text(text, encoding="utf-8")
    return load_yaml_file(path)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("030", 30),  # YAML 1.1 reads octal 24
        ("-5", -5),
        ("+7", 7),
        ("0x1e", 30),
        ("0o17", 15),
        ("1:00", "1:00"),  # YAML 1.1 reads base 60, 60
        ("1_000", "1_000"),  # YAML 1.1 drops the underscore
        ("05554443322", 5554443322),
        ("'030'", "030"),
        ("3.5", 3.5),
    ],
)
def test_integers_follow_yaml_12(tmp_path: Path, text: str, value: object) -> None:
    assert _load(tmp_path, f"değer: {text}\n") == {"değer": value}


def test_plain_safe_load_unchanged() -> None:
    import yaml

    assert yaml.safe_load("a: 030") == {"a": 24}


def test_alias_rejected(tmp_path: Path) -> None:
    with pytest.raises(YamlFileError, match="aliases"):
        _load(tmp_path, "a: &x [1]\nb: *x\n")


def test_huge_integer_rejected(tmp_path: Path) -> None:
    with pytest.raises(YamlFileError, match="unsupported value"):
        _load(tmp_path, "a: " + "9" * 5000 + "\n")


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tapgate.yaml"
    path.write_text("server:\n  listen: 127.0.0.1:8080\n public_url: x\n", encoding="utf-8")
    with pytest.raises(YamlFileError) as raised:
        load_yaml_file(path)
    message = str(raised.value)
    assert message.startswith(f"{path} is not valid YAML at line 3, column 2: ")
    assert "<unicode string>" not in message


@pytest.mark.parametrize(
    ("text", "key", "line", "column", "first_line"),
    [
        pytest.param("a: 1\nb: 2\na: 3\n", "'a'", 3, 1, 1, id="top level"),
        pytest.param(
            "push_profiles:\n  - {name: p1, name: p2, timeout: 30}\n",
            "'name'",
            2,
            16,
            2,
            id="flow mapping",
        ),
        pytest.param(
            "server:\n  listen: 127.0.0.1:8080\n  public_url: x\n  listen: 0.0.0.0:8080\n",
            "'listen'",
            4,
            3,
            2,
            id="nested block",
        ),
        pytest.param("030: a\n30: b\n", "30", 2, 1, 1, id="equal integers"),
        pytest.param("a: 1\n'a': 2\n", "'a'", 2, 1, 1, id="quoted"),
    ],
)
def test_duplicate_key_rejected(
    tmp_path: Path, text: str, key: str, line: int, column: int, first_line: int
) -> None:
    path = tmp_path / "tapgate.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(YamlFileError) as raised:
        load_yaml_file(path)

    assert str(raised.value) == (
        f"{path} is not valid YAML at line {line}, column {column}: duplicate key {key} "
        f"(first at line {first_line}); keep one of them"
    )


def test_equal_keys_in_separate_mappings_allowed(tmp_path: Path) -> None:
    text = "auth_profiles:\n  - {name: a, type: local}\n  - {name: b, type: local}\n"

    assert _load(tmp_path, text) == {
        "auth_profiles": [{"name": "a", "type": "local"}, {"name": "b", "type": "local"}]
    }


def test_merge_key_override_allowed(tmp_path: Path) -> None:
    # `<<:` copies another mapping's keys, and an explicit key replaces the copied one.
    assert _load(tmp_path, "a:\n  <<: {x: 1, y: 2}\n  x: 3\n") == {"a": {"x": 3, "y": 2}}


def test_relay_settings_duplicate_key_rejected(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text("listen: 127.0.0.1:8443\nlisten: 127.0.0.1:9443\n", encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        load_relay_settings(path)

    assert str(raised.value) == (
        f"relay settings: {path} is not valid YAML at line 2, column 1: duplicate key "
        "'listen' (first at line 1); keep one of them"
    )
