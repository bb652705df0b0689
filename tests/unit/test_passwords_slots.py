"""How many password hashes run at once."""

from __future__ import annotations

import pytest

from tapgate.directory.passwords import hash_slots


@pytest.mark.parametrize(
    ("cores", "memory_cost_kib", "slots"),
    [
        (2, 65536, 2),  # the default profile: one 64 MiB hash a core
        (8, 65536, 8),
        (1, 65536, 2),  # never fewer than two
        (2, 1024, 8),  # the cheap profile: four a core
        (2, 32768, 4),  # in between: bounded by 64 MiB a core
        (2, 0, 8),
    ],
)
def test_hash_slots(cores: int, memory_cost_kib: int, slots: int) -> None:
    assert hash_slots(cores, memory_cost_kib) == slots
