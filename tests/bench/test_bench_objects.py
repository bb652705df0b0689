"""The benchmark's objects document: `--hash none` turns off the first factor in tapgate."""

from __future__ import annotations

import pytest

from tapgate.bench.provision import bench_objects


@pytest.mark.parametrize("check_password", [True, False])
def test_applications_follow_check_password(check_password: bool) -> None:
    document = bench_objects(
        "number", 60, radius_secret="gizli-anahtar", check_password=check_password
    )
    applications = {a["name"]: a for a in document["applications"]}
    assert len(applications) == 2
    assert all(a["require_password"] is check_password for a in applications.values())
