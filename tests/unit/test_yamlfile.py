"""Administrator YAML: integers read as YAML 1.2 reads them, aliases rejected."""

from __future__ import annotations

from pathlib import Path

import pytest

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
