"""Training on 2 processes (torchrun, the gloo backend on CPU) against one process with the same flags:
DDP and FSDP2, LoRA and --full, a small Gemma 3 and a small Llama. Per-step losses agree to 1e-5, the saved
weights within fp32 round-off, and a resumed 2-rank run (or the 1-process resume of a 2-rank run) continues
with the same losses. The batches are chosen so that the last micro-batch of an epoch holds one row: the
second rank then runs a row of padding, and gradient accumulation is on (DDP's no_sync).
MINIFC_TEST_DEVICE=cuda runs the same on 2 GPUs with NCCL, in fp32 (benchmarks/gpu_session.sh ddp)."""

import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train
from minifc import distributed, tiny
from minifc.chat import get_format
from minifc.collate import epoch_batches
from minifc.data import BUILTIN_TEST, BUILTIN_TRAIN, load_examples
from minifc.trainlog import MetricsLog

REPO = Path(__file__).resolve().parent.parent
SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, head_dim=16, max_position_embeddings=1024)
# Per model: flags giving an odd number of packed rows (Gemma 33 rows of 460 tokens, Llama 37 of 560), two
# rows per micro-batch, and enough steps to reach the epoch's last micro-batch (one row).
FLAGS = {"gemma3": ["--max-len", 460, "--batch-tokens", 920, "--grad-accum", 2, "--max-steps", 9],
         "llama3.2": ["--max-len", 560, "--batch-tokens", 1120, "--grad-accum", 3, "--max-steps", 7]}
TOL = 1e-5
DEVICE = os.environ.get("MINIFC_TEST_DEVICE", "cpu")
# Saved weights: AdamW divides each gradient by its own running magnitude, so where a gradient is near
# zero, fp32 round-off of the summation order (rows split over ranks) moves the update by more than
# 1e-5 (measured up to 1.05e-5); 1e-4 is 1% of one step at --lr 1e-2.
WEIGHT_TOL = 1e-4

pytestmark = [pytest.mark.slow,  # each 2-process run starts two Python processes (a few seconds)
              pytest.mark.skipif(DEVICE == "cuda" and torch.cuda.device_count() < 2, reason="needs 2 GPUs")]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_jsonl(path, examples):
    with open(path, "w") as f:
        for e in examples:
            f.write(json.dumps({"messages": e.messages, "tools": e.tools, "category": e.category}) + "\n")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The 40 shortest built-in training conversations and 6 short held-out ones."""
    fmt = get_format("gemma3")
    size = lambda e: len(fmt.render(e.messages, e.tools or None).text)
    directory = tmp_path_factory.mktemp("data")
    train_examples = sorted(load_examples(BUILTIN_TRAIN)[0], key=size)[:40]
    test_examples = sorted(load_examples(BUILTIN_TEST)[0], key=size)[:6]
    return write_jsonl(directory / "train.jsonl", train_examples), write_jsonl(directory / "test.jsonl", test_examples)


@pytest.fixture(scope="module")
def bases(data, tmp_path_factory):
    """{format: a small random model of its family (Gemma 3 or Llama) with a tokenizer trained on the data}."""
    examples = load_examples(data[0])[0]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tiny, "SIZES", SMALL)
        return {name: tiny.save_tiny(tmp_path_factory.mktemp(name) / "model",
                                     tiny.tokenizer_for_examples(examples, get_format(name)), get_format(name))
                for name in FLAGS}


def flags(data, bases, fmt, out, *extra):
    return ["--model", str(bases[fmt]), "--data", str(data[0]), "--eval-data", str(data[1]), "--out", str(out),
            "--lr", "1e-2", "--eval-interval", "3", "--save-interval", "3", "--check-examples", "0",
            "--device", DEVICE, "--dtype", "float32",
            *map(str, FLAGS[fmt]), *map(str, extra)]


def torchrun(argv, nproc=2) -> subprocess.CompletedProcess:
    """train.py under `torchrun --standalone` (a free port), one thread per process."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                           "train.py", *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def run_ok(argv, nproc=2):
    done = torchrun(argv, nproc)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def losses(out, key="loss"):
    return [r[key] for r in MetricsLog(Path(out) / "metrics.jsonl").read() if key in r]


def weights(directory):
    name = "adapter_model.safetensors" if (directory / "adapter_model.safetensors").is_file() else "model.safetensors"
    return load_file(directory / name)


def assert_close_runs(one, two, tol=TOL):
    a, b = losses(one), losses(two)
    assert len(a) == len(b) and a[0] != a[-1]
    assert max(abs(x - y) for x, y in zip(a, b)) <= tol, (a, b)
    assert max(abs(x - y) for x, y in zip(losses(one, "heldout_loss"), losses(two, "heldout_loss"))) <= tol


# (format, --parallel, --full): both families, both modes, LoRA and --full
CASES = [("gemma3", "ddp", False), ("gemma3", "fsdp", False), ("gemma3", "fsdp", True), ("llama3.2", "ddp", True),
         ("llama3.2", "fsdp", False)]


@pytest.fixture(scope="module")
def runs(data, bases, tmp_path_factory):
    """Each case once on 1 process and once on 2 (cached for the resume tests)."""
    done = {}

    def get(fmt, mode, full):
        if (fmt, mode, full) not in done:
            root = tmp_path_factory.mktemp(f"{fmt}-{mode}-{'full' if full else 'lora'}")
            extra = ["--full"] if full else ["--export"] if mode == "fsdp" else []  # merged from gathered weights
            train.main(flags(data, bases, fmt, root / "one", *extra))
            run_ok(flags(data, bases, fmt, root / "two", "--parallel", mode, *extra))
            done[fmt, mode, full] = root / "one", root / "two"
        return done[fmt, mode, full]
    return get


@pytest.mark.parametrize("fmt, mode, full", CASES)
def test_two_ranks_equal_one_process(runs, fmt, mode, full):
    one, two = runs(fmt, mode, full)
    assert_close_runs(one, two)
    last = FLAGS[fmt][FLAGS[fmt].index("--max-steps") + 1]
    assert sorted(p.name for p in two.iterdir() if p.name.startswith("step-")) == ["step-3", "step-6", f"step-{last}"]
    for directory in ("step-3", "final") + (("merged",) if (one / "merged").is_dir() else ()):
        ours, theirs = weights(one / directory), weights(two / directory)
        assert ours.keys() == theirs.keys()
        for key in ours:
            torch.testing.assert_close(theirs[key], ours[key], rtol=0, atol=WEIGHT_TOL, msg=lambda m: f"{key}: {m}")
    assert json.loads((two / "args.json").read_text()).get("parallel") is None  # any number of ranks may resume


def resume_from_step_3(run, out):
    """A copy of a finished run's directory as a run stopped after its step-3 checkpoint."""
    shutil.copytree(run, out)
    for path in out.iterdir():
        if path.name.startswith("step-") and path.name != "step-3" or path.name == "final":
            shutil.rmtree(path)
    return out


def test_fsdp_full_resume_on_two_ranks_continues_exactly(runs, tmp_path):
    """--full under FSDP2: weights and AdamW state are saved whole by rank 0 and sharded again on resume."""
    _, two = runs("gemma3", "fsdp", True)
    out = resume_from_step_3(two, tmp_path / "resumed")
    run_ok(["--resume", str(out), "--parallel", "fsdp"])
    assert losses(out) == pytest.approx(losses(two), abs=1e-6)
    for key, value in weights(two / "final").items():
        torch.testing.assert_close(weights(out / "final")[key], value, rtol=0, atol=1e-6)


def test_two_rank_lora_run_resumes_on_one_process(runs, tmp_path):
    """The checkpoint of a 2-rank FSDP2 run is a single-process checkpoint: one process continues it."""
    one, two = runs("gemma3", "fsdp", False)
    out = resume_from_step_3(two, tmp_path / "resumed")
    train.main(["--resume", str(out)])
    assert_close_runs(one, out)


def test_each_rank_takes_its_rows_and_a_padding_row_when_none_is_left(data, bases):
    from minifc.loader import load
    from minifc.encode import encode_dataset
    _, tokenizer, fmt = load(bases["gemma3"], weights=False)
    encoded, _ = encode_dataset(load_examples(data[0])[0], tokenizer, fmt, 460, False)
    whole = list(epoch_batches(encoded, 2, tokenizer.pad_id, 460, seed=3))
    parts = [list(epoch_batches(encoded, 2, tokenizer.pad_id, 460, seed=3, part=(rank, 2))) for rank in (0, 1)]
    assert len(whole) == len(parts[0]) == len(parts[1]) == 17  # 33 rows, two per batch
    for batch, first, second in zip(whole[:-1], *parts):
        assert torch.equal(torch.cat([first.input_ids, second.input_ids]), batch.input_ids[[0, 1]])
        assert first.num_trained + second.num_trained == batch.num_trained
    padding = parts[1][-1]
    assert padding.num_trained == 0 and padding.num_tokens == 1 and torch.equal(parts[0][-1].input_ids,
                                                                                whole[-1].input_ids)


def test_errors_name_the_fix(data, bases, tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match=r"--parallel fsdp needs the processes torchrun starts: run `torchrun"):
        train.parse_args(["--model", "tiny", "--parallel", "fsdp"])
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(SystemExit, match=r"= 2 rows per micro-batch do not divide among 3 ranks: make --batch-tokens "
                                         r"a multiple of 3 x --max-len = 1536"):
        train.parse_args(["--model", "tiny", "--max-len", "512", "--batch-tokens", "1024"])
    with pytest.raises(SystemExit, match=r"--quantize nf4 cannot be sharded by --parallel fsdp"):
        train.parse_args(["--model", str(bases["gemma3"]), "--quantize", "nf4", "--parallel", "fsdp"])


def test_a_failing_rank_ends_the_job_with_its_rank_and_message(data, bases, tmp_path):
    """A rank that cannot read its data stops, naming itself; torchrun ends the other rank and fails."""
    out = tmp_path / "run"
    argv = flags(data, bases, "gemma3", out, "--parallel", "fsdp")
    argv[argv.index("--data") + 1] = str(tmp_path / "missing.jsonl")
    done = torchrun(argv)
    assert done.returncode != 0
    assert re.search(r"rank [01]: data: .*missing.jsonl: no such file or directory", done.stderr), done.stderr[-3000:]
