"""Where the real model's venv and converted weights live, shared by the Makefile's idea of it,
prepare.py (run by the model venv) and the e2e test (run by the project venv): stdlib only.

Both are keyed by content hashes, so a new lock gets a new venv and a new conversion gets a new
directory, and neither is ever half-updated in place.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent
LOCK = MODEL_DIR / "requirements.lock"
PREPARE = MODEL_DIR / "prepare.py"
KEY_LENGTH = 16  # hex characters; the Makefile cuts `sha256sum` output to the same length


def cache_root() -> Path:
    """~/.cache/dayzero, as the Makefile spells it ($(HOME)/.cache/dayzero)."""
    return Path.home() / ".cache" / "dayzero"


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()[:KEY_LENGTH]


def venv_dir() -> Path:
    """The model venv: keyed by the lock alone, like `make model-env` does."""
    return cache_root() / f"model-venv-{_digest(LOCK)}"


def model_dir() -> Path:
    """The converted safetensors model: keyed by the lock and the conversion code."""
    return cache_root() / "model" / _digest(LOCK, PREPARE) / "smollm2"
