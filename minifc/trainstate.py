"""Training checkpoints: what a run needs to continue exactly where it stopped, written atomically.

    OUT/step-N/
        adapter_model.safetensors + adapter_config.json    (LoRA: PEFT layout, loadable as an adapter)
      or config.json + model.safetensors + tokenizer...    (--full: an HF model directory)
        trainer_state.pt    step, data position, optimizer state, RNG states
    OUT/args.json           the run's settings (prepare_run_dir writes them, saved_flags reads them)

    write = weights_writer(model, full, base_name, hf_config, tokenizer, fmt, tokenizer_dir)
    save_step(OUT, N, (epoch, batches_done), optimizer, write, keep=3)     # OUT/step-N; the latest 3 kept
    step, (epoch, batches_done) = restore(latest_checkpoint(OUT), optimizer.load_state_dict)   # also sets the RNG
    args = parser.parse_args(argv, argparse.Namespace(**saved_flags(OUT)))  # the flags given now over the saved

A checkpoint appears only once complete (checkpoint.atomic_directory), so a crash or a full disk
mid-save never leaves a directory that looks like a checkpoint but is not.
The learning-rate schedule is a pure function of the step (train.py), so the step is its whole state.
The data order depends only on (seed, epoch) (collate.epoch_batches), so the data position is
(epoch, batches done in that epoch). The torch RNG states are kept for dropout.
"""

import json
import re
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import torch

from .adapters import save_adapter
from .chat.lookup import write_chat_format
from .checkpoint import atomic_directory
from .export import save_hf_model
from .trainlog import MetricsLog

_STATE_FILE = "trainer_state.pt"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoints(out) -> list[Path]:
    """Finished checkpoints in `out`, oldest first (half-written `.partial` directories are ignored)."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [p for p in out.iterdir() if _STEP_DIR.match(p.name) and (p / _STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.removeprefix("step-")))


def latest_checkpoint(out) -> Path | None:
    found = checkpoints(out)
    return found[-1] if found else None


def last_good_checkpoint(out) -> str:
    """For the message of a diverged run: the newest checkpoint whose step's loss (metrics.jsonl) was at most
    twice the lowest loss logged up to it, and the newer ones that were not, named as suspect (the run may
    already have been diverging when they were saved)."""
    losses = {r["step"]: r["loss"] for r in MetricsLog(Path(out) / "metrics.jsonl").read() if "loss" in r}
    suspect = []
    for path in reversed(checkpoints(out)):
        step = int(path.name.removeprefix("step-"))
        loss, lowest = losses.get(step), min((v for s, v in losses.items() if s <= step), default=None)
        if loss is None or loss <= 2 * lowest:
            good = f"{path}" + (f" (loss {loss:.4g} at its step)" if loss is not None else "")
            break
        suspect.append(f"{path} (loss {loss:.4g} at its step, over twice the lowest before it, {lowest:.4g})")
    else:
        good = "none" + (" kept" if suspect else " (none saved yet)")
    return good + (f"; newer but suspect, as the loss was rising: {', '.join(suspect)}" if suspect else "")


def save_checkpoint(directory, write_weights, state: dict) -> Path:
    """Write weights (by `write_weights(tmp)`) and `state` into `directory`, atomically. A failed write (a
    full disk: torch.save says "iostream error", safetensors an OSError) is an OSError naming the directory
    and the free space; nothing of it is left behind."""
    try:
        with atomic_directory(directory) as tmp:
            write_weights(tmp)
            torch.save(state, tmp / _STATE_FILE)
    except (OSError, RuntimeError) as error:
        free = shutil.disk_usage(Path(directory).parent).free / 2**30
        raise OSError(f"{directory}: the checkpoint could not be written ({error}); {free:.2f} GiB free on that "
                      "disk. Nothing was half-written and the earlier checkpoints are intact: free some space "
                      "(or lower --keep-checkpoints) and continue with --resume") from error
    return directory


def rng_state() -> dict:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def save_step(out, step: int, position: tuple[int, int], optimizer, write_weights, keep: int, *,
              optimizer_state: dict | None = None, trained=None, rng_ranks: list[dict] | None = None) -> Path:
    """Checkpoint OUT/step-N (the weights, the optimizer, the data position, the RNG) and keep the latest
    `keep` checkpoints. Several processes (distributed.py) pass, on rank 0, what they gathered: the whole
    optimizer state, the trained weights (checked here for inf and NaN) and every rank's RNG states."""
    trained = [p for group in optimizer.param_groups for p in group["params"]] if trained is None else trained
    if trained and not bool(torch.stack([torch.isfinite(p).all() for p in trained]).all()):
        raise ValueError(f"step {step}: the trained weights hold inf or NaN, so they were not saved; the "
                         f"checkpoints before it are kept. Lower --lr or raise --warmup-steps")
    state = {"step": step, "epoch": position[0], "batch": position[1], "rng": rng_state(),
             "optimizer": optimizer.state_dict() if optimizer_state is None else optimizer_state}
    if rng_ranks is not None:
        state["rng_ranks"] = rng_ranks
    path = save_checkpoint(Path(out) / f"step-{step}", write_weights, state)
    for old in checkpoints(out)[:-keep]:
        shutil.rmtree(old)
    print(f"saved {path}")
    return path


@contextmanager
def ctrl_c_stops():
    """Within: Ctrl-C or SIGTERM (a scheduler's preemption) appends to the list given, and the loop
    checkpoints and stops after the step. A second Ctrl-C raises KeyboardInterrupt at once, a second
    SIGTERM terminates (the usual behaviours)."""
    stop, previous = [], {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        stop.append(True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\n{name}: saving a checkpoint after this step (Ctrl-C again quits without saving)", flush=True)
    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


def weights_writer(model, full: bool, base_name: str, hf_config: dict, tokenizer, fmt, tokenizer_dir=None):
    """directory -> writes the weights there: the LoRA adapter in PEFT layout (+ minifc.json naming the
    chat format), or with `full` the whole model as an HF directory (export.save_hf_model)."""
    def write(directory):
        if full:
            save_hf_model(model, directory, hf_config, tokenizer, fmt, tokenizer_dir)
        else:
            save_adapter(model, directory, base_name)
            write_chat_format(directory, fmt, tokenizer_dir, base_model=base_name,
                              architecture=model.config.architecture())  # + the format's chat_template.jinja
    return write


def restore(directory, load_optimizer, rank: int = 0, world: int = 1) -> tuple[int, tuple[int, int]]:
    """Load the optimizer state (by `load_optimizer(state_dict)`, e.g. optimizer.load_state_dict) and the
    RNG states of checkpoint `directory`; returns (step, data position). Each of `world` ranks takes its
    own RNG states when the run that saved them had as many ranks, else those of the saving process."""
    state = load_trainer_state(directory)
    load_optimizer(state["optimizer"])
    ranks = state.get("rng_ranks")
    rng = ranks[rank] if ranks is not None and len(ranks) == world else state["rng"]
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    print(f"resumed from {directory} at step {state['step']}")
    return state["step"], (state["epoch"], state["batch"])


def load_trainer_state(directory) -> dict:
    path = Path(directory) / _STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {directory} is not a finished train.py checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing = [key for key in ("step", "epoch", "batch", "optimizer", "rng") if key not in state]
    except Exception as error:  # torch.load raises many kinds (RuntimeError, UnpicklingError, EOFError...)
        missing = [f"readable ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"]
    if missing:
        raise ValueError(f"{path}: damaged, not {', '.join(missing)}; delete {directory} to resume from the "
                         "checkpoint before it, or start over with --overwrite")
    return state


def prepare_run_dir(out, settings: dict, resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint a resumed run continues from (None for a new run), after refusing to mix two runs
    in one directory (ValueError naming the way out) and recording the settings in OUT/args.json, which
    --resume reuses."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory: choose another --out")
    _clean_leftovers(out)
    found = checkpoints(out)
    if resume and not found:
        raise ValueError(f"--resume {out}: no finished checkpoint (a step-N directory) there")
    if (found or (out / "final").exists()) and not resume:
        if not overwrite:
            raise ValueError(f"{out} holds another run's checkpoints ({', '.join(p.name for p in found) or 'final'}): "
                             f"continue it with --resume {out}, start over with --overwrite, or choose another --out")
        # --overwrite removes the previous run's checkpoints, final output and logs (nothing else)
        for path in found + [out / n for n in ("init", "final", "merged", "metrics.jsonl", "args.json", "loss.png")]:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(settings, indent=2))
    return found[-1] if resume else None


def _clean_leftovers(out: Path):
    """What a save killed midway left (checkpoint.atomic_directory): `.X.partial` is removed; `.X.old` is a
    finished checkpoint that was being replaced, so it becomes X again if X is gone, else it is removed."""
    for path in sorted(out.glob(".*.partial")) + sorted(out.glob(".*.old")):
        target = out / path.name[1:].rsplit(".", 1)[0]
        if path.suffix == ".old" and not target.exists():
            path.rename(target)
            print(f"{out}: restored {target.name} from {path.name}, left by a save that was killed")
        else:
            shutil.rmtree(path)
            print(f"{out}: removed {path.name}, left by a save that was killed")


# What a resumed run may not change: the base model and its adapter's shape, and everything that decides
# the data, its order and its packing (the saved data position counts batches of exactly that data).
FIXED_ON_RESUME = ("model", "format", "full", "quantize", "lora_r", "lora_alpha", "lora_dropout", "lora_targets",
                   "rslora", "data", "data_format", "eval_data", "strict", "train_on", "last_turn_only",
                   "no_train_reasoning", "max_len", "truncate", "no_packing", "batch_tokens", "grad_accum", "seed")


def resume_changes(saved: dict, settings: dict) -> list[str]:
    """The flags given with --resume that change what the saved run fixed, as `--flag: saved -> now`."""
    return [f"--{key.replace('_', '-')}: {saved[key]!r} -> {settings.get(key)!r}" for key in FIXED_ON_RESUME
            if key in saved and saved[key] != settings.get(key)]


def saved_flags(out) -> dict:
    """The flags the run in OUT saved in OUT/args.json (train.py writes it), for --resume OUT to parse
    the flags given now over (trainargs.parse_args)."""
    path = Path(out) / "args.json"
    if not path.is_file():
        raise FileNotFoundError(f"--resume {out}: no args.json there; is it the output directory of a train.py run?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: line {error.lineno}: invalid JSON ({error.msg}); restore it, or start a new run "
                         "with another --out") from None
