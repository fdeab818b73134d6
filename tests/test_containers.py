"""The exact commands the Docker images run, run here without Docker (no engine on CI machines)."""

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from serverprocess import free_port

from latent_bridge.demo import EXAMPLES

ROOT = Path(__file__).resolve().parents[1]


def dockerfile_cmd(name: str) -> list[str]:
    text = (ROOT / "docker" / name).read_text()
    return json.loads(re.findall(r"^CMD (\[.*\])$", text, re.M)[-1])


def runnable(argv: list[str]) -> list[str]:
    """The image's command with its program taken from this environment (the image has it on PATH)."""
    return [str(Path(sys.executable).with_name(argv[0])), *argv[1:]]


def dockerfile_env(name: str) -> dict[str, str]:
    text = (ROOT / "docker" / name).read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.*)$", text, re.M):
        env |= dict(item.split("=", 1) for item in shlex.split(line) if "=" in item)
    return env


def test_images_run_the_documented_commands() -> None:
    assert dockerfile_cmd("trainer.Dockerfile") == [
        "latent-bridge", "demo", "--no-serve", "--models", "/models", "--data", "/app/data/demo"]
    assert dockerfile_cmd("api.Dockerfile") == ["latent-bridge", "serve"]
    assert dockerfile_env("api.Dockerfile")["LATENT_BRIDGE_BUNDLE"] == "/models/demo"
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "condition: service_completed_successfully" in compose
    assert "/readyz" in compose and "/readyz" in (ROOT / "docker" / "api.Dockerfile").read_text()


def test_server_side_imports_no_torch() -> None:
    """The API image installs no torch: importing and building the server must not need it."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import latent_bridge.service.app, latent_bridge.service.server, latent_bridge.cli\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_trainer_then_api_commands(tmp_path: Path) -> None:
    models = tmp_path / "models"
    trainer = [a.replace("/models", str(models)).replace("/app/data/demo", str(ROOT / "data" / "demo"))
               for a in dockerfile_cmd("trainer.Dockerfile")]
    subprocess.run(runnable(trainer), check=True, cwd=tmp_path, timeout=600)
    assert (models / "demo" / "manifest.json").is_file()
    again = subprocess.run(runnable(trainer), check=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "using bundle" in again.stdout  # the one-shot trainer is idempotent over the volume

    port = free_port()
    image_env = {k: v for k, v in dockerfile_env("api.Dockerfile").items() if k != "PATH"}
    env = os.environ | image_env | {
        "LATENT_BRIDGE_BUNDLE": str(models / "demo"), "LATENT_BRIDGE_HOST": "127.0.0.1",
        "LATENT_BRIDGE_PORT": str(port), "LATENT_BRIDGE_API_KEY": ""}
    server = subprocess.Popen(runnable(dockerfile_cmd("api.Dockerfile")), env=env, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if _get(f"{base}/readyz"):
                    break
            except OSError:
                time.sleep(0.2)
        healthcheck = (ROOT / "docker-compose.yml").read_text().split('"-c", "')[1].split('"]')[0]
        subprocess.run([sys.executable, "-c", healthcheck.replace("8000", str(port))], check=True, timeout=10)
        urls = re.findall(r"curl -s '([^']+)'", EXAMPLES.format(host="127.0.0.1", port=port))
        assert len(urls) == 3
        bark, firetruck, route = (_get(u) for u in urls)
        hits = bark["results"][0]["hits"]  # type: ignore[index]
        captions = " ".join(str(h["payload"]["caption"]).lower() for h in hits)
        assert len(hits) == 5
        assert "dog" in captions, captions
        assert len(firetruck["results"][0]["hits"]) == 5  # type: ignore[index]
        assert route["best"]["path"] == ["audio", "text", "image"]  # type: ignore[index]
    finally:
        server.terminate()
        server.wait(timeout=30)
