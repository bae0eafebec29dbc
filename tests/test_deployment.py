"""docker-compose.yml and the example configs stay valid."""

import shutil
import subprocess
from pathlib import Path

import pytest

from stream.config import load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["docker.toml", "local.toml"])
def test_example_configs_load(name: str) -> None:
    settings = load_settings(ROOT / "examples" / name)
    assert settings.syncs


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_file_is_valid() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "COHORT_SYNC_BROKER: kafka://kafka:9092" in result.stdout
    for service in ("kafka:", "minio:", "create-bucket:", "worker:"):
        assert service in result.stdout


def test_compose_is_in_the_v2_form_with_every_image_pinned() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    assert not [line for line in compose.splitlines() if line.startswith("version:")]
    images = [line.split("image:")[1].strip() for line in compose.splitlines() if "image:" in line]
    assert len(images) == 3
    for image in images:
        tag = image.rpartition(":")[2]
        assert tag not in ("", "latest") and "/" not in tag, image


def test_compose_wires_the_worker_to_the_config_in_the_image() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COHORT_SYNC_CONFIG: /app/examples/docker.toml" in compose
    assert "COPY examples ./examples" in dockerfile and "WORKDIR /app" in dockerfile
