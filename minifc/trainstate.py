"""Training checkpoints: what a run needs to continue exactly where it stopped, written atomically.

    OUT/step-N/
        adapter_model.safetensors + adapter_config.json    (LoRA: PEFT layout, loadable as an adapter)
      or config.json + model.safetensors + tokenizer...    (--full: an HF model directory)
        trainer_state.pt    step, data position, optimizer state, RNG states, the run's arguments

    save_checkpoint(OUT / "step-N", write_weights, state)   # write_weights(tmp_dir) creates tmp_dir
    state = load_trainer_state(latest_checkpoint(OUT))

Everything goes into `OUT/.step-N.partial` first and is renamed to `OUT/step-N` only once complete,
so a crash or a full disk mid-save never leaves a directory that looks like a checkpoint but is not.

The learning-rate schedule is a pure function of the step (train.py), so the step is its whole state.
The data order depends only on (seed, epoch) (collate.epoch_batches), so the data position is
(epoch, batches done in that epoch). The torch RNG states are kept for dropout.
"""

import re
import shutil
from pathlib import Path

import torch

from .export import replace_directory

STATE_FILE = "trainer_state.pt"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def step_dir(out, step: int) -> Path:
    return Path(out) / f"step-{step}"


def checkpoints(out) -> list[Path]:
    """Finished checkpoints in `out`, oldest first (half-written `.partial` directories are ignored)."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir()
             if (m := _STEP_DIR.match(p.name)) and (p / STATE_FILE).is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out) -> Path | None:
    found = checkpoints(out)
    return found[-1] if found else None


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(directory, write_weights, state: dict) -> Path:
    """Write weights (by `write_weights(tmp)`, which creates `tmp`) and `state` into `directory`, atomically."""
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_weights(tmp)
        torch.save(state, tmp / STATE_FILE)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written is left behind
        raise
    replace_directory(tmp, directory)
    return directory


def load_trainer_state(directory) -> dict:
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {directory} is not a finished train.py checkpoint")
    return torch.load(path, map_location="cpu", weights_only=True)


def remove_checkpoints(out):
    """What --overwrite removes: the previous run's checkpoints, final output and logs (nothing else)."""
    out = Path(out)
    for path in checkpoints(out) + [out / name for name in ("init", "final", "merged", "metrics.jsonl",
                                                               "args.json", "loss.png")]:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
