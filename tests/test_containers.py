"""The Docker images, rebuilt without Docker (no engine on CI machines): each Dockerfile's build steps are
replayed in order (its COPYs into a fresh folder, keeping the sources' mtimes as COPY does, its pip and
python RUNs in a clean venv), then the images' commands run from those venvs."""

import base64
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from latent_bridge.demo import EXAMPLES
from serverprocess import free_port
from sounds import wav

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
sys.path.insert(0, str(DOCKER))
from requirements import requirements  # noqa: E402

# Where the trainer image gets torch; here pip's own index and find-links (CI has no route to the CPU index).
JSON_HEADERS = {"content-type": "application/json"}
PACKAGE_DIRS = ("latent_bridge", "service", "training")
LOCAL_ARGS = {"TORCH_INDEX": os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")}


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (DOCKER / name).read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def dockerfile_cmd(name: str) -> list[str]:
    return json.loads([rest for word, rest in instructions(name) if word == "CMD"][-1])


def dockerfile_env(name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in instructions(name):
        if word == "ENV":
            env |= dict(item.split("=", 1) for item in shlex.split(rest) if "=" in item)
    return env


def _dockerignored() -> list[str]:
    return [p.strip().removeprefix("**/") for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip()]


@dataclass
class Image:
    venv: Path
    workdir: Path

    def program(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def build(name: str, tmp: Path) -> Image:
    """Replay the first build stage of ``docker/<name>``: the steps that install the package."""
    image = Image(tmp / "venv", tmp / "work")
    subprocess.run([sys.executable, "-m", "venv", str(image.venv)], check=True)
    image.workdir.mkdir()
    env = os.environ | {"PATH": f"{image.venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(image.venv)}
    args: dict[str, str] = {}
    ignore = shutil.ignore_patterns(*_dockerignored())
    stages = 0
    for word, rest in instructions(name):
        if word == "FROM":
            stages += 1
            if stages > 1:
                break
        elif word == "ARG":
            key, _, default = rest.partition("=")
            args[key] = LOCAL_ARGS.get(key, default)
        elif word == "COPY":
            *sources, target = shlex.split(rest)
            for source in sources:
                src, dst = ROOT / source, image.workdir / target
                if src.is_dir():
                    shutil.copytree(src, dst, ignore=ignore)
                else:
                    shutil.copy2(src, dst / src.name if target.endswith("/") else dst)
        elif word == "RUN" and rest.split()[0] in ("pip", "python") and not rest.startswith("python -m venv"):
            command = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest)
            subprocess.run(["bash", "-c", command], check=True, cwd=image.workdir, env=env, timeout=900)
    return image


@pytest.fixture(scope="module")
def api_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return build("api.Dockerfile", tmp_path_factory.mktemp("api-image"))


@pytest.fixture(scope="module")
def trainer_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return build("trainer.Dockerfile", tmp_path_factory.mktemp("trainer-image"))


def test_images_run_the_documented_commands() -> None:
    assert dockerfile_cmd("trainer.Dockerfile") == [
        "latent-bridge", "demo", "--no-serve", "--models", "/models", "--data", "/app/data/demo"]
    assert dockerfile_cmd("api.Dockerfile") == ["latent-bridge", "serve"]
    assert dockerfile_env("api.Dockerfile")["LATENT_BRIDGE_BUNDLE"] == "/models/demo"
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "condition: service_completed_successfully" in compose
    assert "/readyz" in compose and "/readyz" in (DOCKER / "api.Dockerfile").read_text()


@pytest.mark.parametrize("name", ["api.Dockerfile", "trainer.Dockerfile"])
def test_the_package_is_built_once_after_its_sources_are_copied(name: str) -> None:
    """No build against stub files (the stale build/ that broke `docker compose up`): dependencies come from
    docker/requirements.py, and the only `pip install .` runs after every package folder is copied."""
    steps = instructions(name)
    builds = [i for i, (word, rest) in enumerate(steps) if word == "RUN" and re.search(r"pip install[^&]* \.", rest)]
    copies = [i for i, (word, rest) in enumerate(steps) if word == "COPY" and rest.split()[0] in PACKAGE_DIRS]
    assert len(builds) == 1 and len(copies) == len(PACKAGE_DIRS) and max(copies) < builds[0]
    assert "--no-deps" in steps[builds[0]][1]
    assert any("requirements.py" in rest for word, rest in steps[: min(copies)] if word == "RUN")
    assert not any("touch" in rest for word, rest in steps if word == "RUN")


def test_requirements_come_from_pyproject() -> None:
    serve = requirements(ROOT / "pyproject.toml", ["serve"])
    names = {re.split(r"[\[<>=;! ]", r)[0] for r in serve}
    assert {"numpy", "pyarrow", "fastapi", "onnxruntime", "faiss-cpu"} <= names
    assert not names & {"torch", "pandas", "uvicorn[standard]", "watchfiles", "websockets"}
    with pytest.raises(SystemExit, match="no extra gpu"):
        requirements(ROOT / "pyproject.toml", ["gpu"])
    train = requirements(ROOT / "pyproject.toml", ["train"])  # the trainer checks bundles with the service's loader
    assert set(serve) <= set(train) and not any(r.startswith("latent-bridge") for r in train)


def test_server_side_imports_no_torch() -> None:
    """The API image installs no torch: importing and building the server must not need it."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import latent_bridge.service.api.app, latent_bridge.service.api.server, latent_bridge.cli\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.slow
def test_wheel_installs_one_import_root(api_image: Image, tmp_path: Path) -> None:
    """`pip install .` (as the image runs it, in a clean venv) puts one top-level package into site-packages."""
    code = (
        "import importlib.metadata as md, json\n"
        "files = md.distribution('latent-bridge').files\n"
        "print(json.dumps(sorted({f.parts[0] for f in files if not f.parts[0].endswith('.dist-info')})))\n"
    )
    out = subprocess.run([api_image.program("python"), "-c", code], check=True, capture_output=True, text=True,
                         cwd=tmp_path).stdout
    assert json.loads(out) == ["..", "latent_bridge"]  # ".." is the console script in bin/
    for generic in ("service", "training"):
        found = subprocess.run([api_image.program("python"), "-c", f"import {generic}"], cwd=tmp_path,
                               capture_output=True)
        assert found.returncode != 0, f"{generic} is importable as a top-level package"


@pytest.mark.slow
def test_the_installed_wheel_runs_from_the_repository_root(api_image: Image) -> None:
    """Python started in the repository root finds the source tree's latent_bridge/ first; its service/ link
    makes that tree import as the installed wheel does (no ModuleNotFoundError; the api image has no
    training stack: the service, the training package and the CLI are imported)."""
    code = "import latent_bridge.service.api.app, latent_bridge.training, latent_bridge.cli; print('ok')"
    found = subprocess.run([api_image.program("python"), "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert found.returncode == 0 and found.stdout.strip() == "ok", found.stderr[-2000:]


@pytest.mark.slow
def test_api_image_holds_no_training_stack(api_image: Image) -> None:
    listed = subprocess.run([api_image.program("pip"), "list", "--format=json"], check=True, capture_output=True,
                            text=True).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert "latent-bridge" in names and "onnxruntime" in names
    assert not names & {"torch", "pandas", "watchfiles", "websockets", "matplotlib"}


def documented_examples(base: str) -> list[tuple[str, str, bytes | None]]:
    """Every request the committed OpenAPI document gives as an example: bodies, and query parameters."""
    document = json.loads((ROOT / "openapi.json").read_text())
    requests: list[tuple[str, str, bytes | None]] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            for example in content.get("examples", {}).values():
                requests.append((method.upper(), base + path, json.dumps(example["value"]).encode()))
            params = {p["name"]: p["examples"]["demo"]["value"] for p in operation.get("parameters", [])
                      if "examples" in p}
            if params:
                requests.append((method.upper(), f"{base}{path}?{urllib.parse.urlencode(params)}", None))
    assert len(requests) >= 6
    return requests


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 60, 40)).save(out, format="PNG")
    return out.getvalue()


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_trainer_then_api_from_the_rebuilt_images(trainer_image: Image, api_image: Image, tmp_path: Path) -> None:
    models = tmp_path / "models"
    trainer = [a.replace("/models", str(models)).replace("/app", str(trainer_image.workdir))
               for a in dockerfile_cmd("trainer.Dockerfile")]
    trainer[0] = trainer_image.program(trainer[0])
    subprocess.run(trainer, check=True, cwd=tmp_path, timeout=900)
    assert (models / "demo" / "manifest.json").is_file()
    manifest = json.loads((models / "demo" / "manifest.json").read_text())
    assert sorted(e["modality"] for e in manifest["encoders"]) == ["audio", "image", "text"]  # = make demo
    again = subprocess.run(trainer, check=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "using bundle" in again.stdout  # the one-shot trainer is idempotent over the volume

    port = free_port()
    image_env = {k: v for k, v in dockerfile_env("api.Dockerfile").items() if k != "PATH"}
    env = os.environ | image_env | {
        "LATENT_BRIDGE_BUNDLE": str(models / "demo"), "LATENT_BRIDGE_HOST": "127.0.0.1",
        "LATENT_BRIDGE_PORT": str(port), "LATENT_BRIDGE_API_KEY": ""}
    command = dockerfile_cmd("api.Dockerfile")
    server = subprocess.Popen([api_image.program(command[0]), *command[1:]], env=env, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if _get(f"{base}/readyz"):
                    break
            except OSError:
                assert server.poll() is None, "the API exited before it was ready"
                time.sleep(0.2)
        healthcheck = (ROOT / "docker-compose.yml").read_text().split('"-c", "')[1].split('"]')[0]
        subprocess.run([api_image.program("python"), "-c", healthcheck.replace("8000", str(port))], check=True,
                       timeout=10)
        urls = re.findall(r"curl -s '([^']+)'", EXAMPLES.format(host="127.0.0.1", port=port))
        assert len(urls) == 3
        bark, firetruck, route = (_get(u) for u in urls)
        hits = bark["results"][0]["hits"]  # type: ignore[index]
        captions = " ".join(str(h["payload"]["caption"]).lower() for h in hits)
        assert len(hits) == 5
        assert "dog" in captions, captions
        assert len(firetruck["results"][0]["hits"]) == 5  # type: ignore[index]
        assert route["best"]["path"] == ["audio", "text", "image"]  # type: ignore[index]
        for raw in ({"text": "a dog"}, {"image": _b64(_png())}, {"audio": _b64(wav(1.0, 16_000))}):
            body = json.dumps({"from": next(iter(raw)), "to": "text", "k": 3} | raw).encode()
            request = urllib.request.Request(f"{base}/retrieve", data=body, method="POST", headers=JSON_HEADERS)
            with urllib.request.urlopen(request, timeout=60) as response:  # raw text, image and sound, as on /
                assert response.status == 200 and len(json.loads(response.read())["results"][0]["hits"]) == 3
        for method, url, body in documented_examples(base):  # what /docs "Try it out" sends
            request = urllib.request.Request(url, data=body, method=method, headers=JSON_HEADERS)
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200, (method, url)
    finally:
        server.terminate()
        server.wait(timeout=30)
