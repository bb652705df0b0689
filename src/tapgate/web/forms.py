"""Reading submitted forms as plain strings, with length limits, so handlers never see files."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

# Longer than any field the pages have; the request body limit bounds the whole form anyway.
MAX_FIELD = 4096


@dataclass
class Form:
    """The text fields of one submitted form; file parts and over-long values are dropped."""

    values: dict[str, list[str]] = field(default_factory=dict)

    def text(self, name: str, limit: int = 256) -> str:
        """Return the field trimmed, or "" when it is absent or longer than `limit`."""
        items = self.values.get(name)
        if not items:
            return ""
        value = items[0].strip()
        return value if len(value) <= limit else ""

    def raw(self, name: str) -> str:
        """Return the field exactly as sent (passwords keep their spaces)."""
        items = self.values.get(name)
        return items[0] if items else ""

    def checked(self, name: str) -> bool:
        return bool(self.values.get(name))

    def all(self, name: str) -> list[str]:
        return [value.strip() for value in self.values.get(name, []) if value.strip()]

    def lines(self, name: str, limit: int = MAX_FIELD) -> list[str]:
        """Return the non-empty lines of a textarea."""
        text = self.values.get(name, [""])[0][:limit]
        # Browsers send CR LF between lines. `splitlines` would also split at characters such
        # as U+2028 that a stored value may contain, and change it on an unedited save.
        return [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]

    def items(self, name: str, limit: int = MAX_FIELD) -> list[str]:
        """Return the comma- or newline-separated items of a field, in order."""
        text = self.values.get(name, [""])[0][:limit]
        return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]


async def read_form(request: Request) -> Form:
    """Return the request's form; the CSRF check has already parsed it for a POST."""
    submitted = await request.form()
    values: dict[str, list[str]] = {}
    for key, value in submitted.multi_items():
        # A field with NUL is dropped like an overlong one: PostgreSQL rejects NUL in text.
        if isinstance(value, str) and len(value) <= MAX_FIELD and "\x00" not in value:
            values.setdefault(key, []).append(value)
    return Form(values)


def integer_or_text(value: str) -> int | str:
    """Return `value` as an int when it is one, else unchanged, so validators name the bad text."""
    stripped = value.strip()
    digits = stripped.lstrip("-")
    if digits.isascii() and digits.isdigit() and len(stripped) < 12:
        return int(stripped)
    return stripped
