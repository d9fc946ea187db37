"""The compose broker (deploy/compose/kafka/secure.properties, not run here: no Docker) is secured
exactly as the local broker these tests run against: same keys, and same values wherever a value
is not a path or an address."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import REPO, Secured

pytestmark = pytest.mark.integration


def _properties(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_compose_broker_has_the_tested_security_settings(secured: Secured) -> None:
    local = _properties(secured.dir.parent / "kafka-secure" / "secure.properties")  # what kafka-secure.sh wrote
    compose = _properties(REPO / "deploy" / "compose" / "kafka" / "secure.properties")
    assert len(local) >= 15
    assert set(local) <= set(compose), f"missing in compose: {sorted(set(local) - set(compose))}"
    for key, value in local.items():
        if "/" not in value and "127.0.0.1" not in value:
            assert compose[key] == value, key
