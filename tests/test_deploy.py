"""The deployment files keep their promises (parsed here; `docker compose config` runs in CI
when the compose plugin is installed, and no container is started in tests)."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_services_restart_wait_for_health_and_share_data() -> None:
    services = compose()["services"]
    for name in ("slack", "discord", "engine", "db"):
        assert services[name]["restart"] == "unless-stopped", name
    for name in ("slack", "discord"):
        service = services[name]
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
        assert service["depends_on"]["engine"]["condition"] == "service_healthy"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "tuneupdata:/data" in service["volumes"] and "healthcheck" in service
    assert "healthcheck" in services["db"]
    assert "${POSTGRES_PASSWORD" in services["db"]["environment"]["POSTGRES_PASSWORD"]
    gpu = services["engine-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]


def test_dockerfile_has_init_healthcheck_and_a_non_interactive_default() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "tini" in text and "HEALTHCHECK" in text
    assert re.search(r"^CMD \[\"slack\"\]", text, re.M) and 'CMD ["console"]' not in text
    assert "AS engine-cuda" in text and "AS engine-cpu" in text
    assert (ROOT / ".dockerignore").exists()
