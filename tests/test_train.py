"""The training loop (train.py) on tiny models on CPU: resume, Ctrl-C, NaN stop, atomic checkpoints,
refusals of bad input, gradient accumulation, and the offline demo learning something."""

import json
import math
import re
import signal

import pytest
import torch

import train
from minifc import export, tiny, trainstate
from minifc.chat import get_format
from minifc.chat.lookup import read_chat_format
from minifc.checkpoint import load_pretrained
from minifc.data import BUILTIN_TEST, BUILTIN_TRAIN, load_examples
from minifc.evalloop import cases_from_examples, run_eval
from minifc.loader import load
from minifc.tokenizer import Tokenizer
from minifc.trainlog import MetricsLog

# A model small enough that a step takes milliseconds; the demo's real size is tested in the slow test.
SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, head_dim=16, max_position_embeddings=1024)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are so small that every op is tiny: with several threads, each op would mostly wait
    for the threads to synchronise (badly so on a shared machine)."""
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
    """The 40 shortest built-in training conversations and 6 short held-out ones, as JSONL files."""
    fmt = get_format("gemma3")
    size = lambda e: len(fmt.render(e.messages, e.tools or None).text)
    directory = tmp_path_factory.mktemp("data")
    train_examples = sorted(load_examples(BUILTIN_TRAIN)[0], key=size)[:40]
    test_examples = sorted(load_examples(BUILTIN_TEST)[0], key=size)[:6]
    return write_jsonl(directory / "train.jsonl", train_examples), write_jsonl(directory / "test.jsonl", test_examples)


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(tiny, "SIZES", SMALL)


@pytest.fixture(scope="module")
def base_dir(data, tmp_path_factory):
    """A small random Gemma 3 with a tokenizer trained on the data: a local base model for LoRA runs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tiny, "SIZES", SMALL)
        examples = load_examples(data[0])[0]
        fmt = get_format("gemma3")
        return tiny.save_tiny(tmp_path_factory.mktemp("base") / "model", tiny.tokenizer_for_examples(examples, fmt), fmt)


def args_for(data, out, *extra):
    return ["--data", str(data[0]), "--eval-data", str(data[1]), "--out", str(out), "--max-len", "512",
            "--batch-tokens", "1024", "--eval-interval", "100", "--check-examples", "0", *map(str, extra)]


def losses(out):
    return [r["loss"] for r in MetricsLog(out / "metrics.jsonl").read() if "loss" in r]


def test_lora_resume_equals_uninterrupted_run(data, base_dir, tmp_path, monkeypatch):
    """6 steps in one go == a run that crashes after its step-3 checkpoint, then --resume: same losses,
    same adapter. LoRA dropout is on, so the RNG state has to be restored too."""
    common = ["--model", base_dir, "--max-steps", 6, "--lora-dropout", 0.1, "--lr", 1e-2, "--save-interval", 3]
    whole = train.main(args_for(data, tmp_path / "whole", *common))
    lr_at = train.lr_at

    def crash_at_step_4(step, total, args):
        if step == 3:
            raise RuntimeError("power cut")
        return lr_at(step, total, args)
    monkeypatch.setattr(train, "lr_at", crash_at_step_4)
    with pytest.raises(RuntimeError, match="power cut"):
        train.main(args_for(data, tmp_path / "split", *common))
    monkeypatch.setattr(train, "lr_at", lr_at)
    resumed = train.main(["--resume", str(tmp_path / "split")])
    a, b = losses(tmp_path / "whole"), losses(tmp_path / "split")
    assert len(a) == len(b) == 6 and a[0] != a[-1]
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-6
    for (name, p), q in zip(whole.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), name
    assert (tmp_path / "split" / "final" / "adapter_model.safetensors").is_file()


def test_ctrl_c_saves_then_resume_continues(data, tmp_path, small, monkeypatch):
    """Full fine-tune of the tiny model: Ctrl-C during step 3 checkpoints step 3 and exits; --resume
    finishes the run with the losses of an uninterrupted one."""
    common = ["--model", "tiny", "--max-steps", 5, "--save-interval", 100]
    train.main(args_for(data, tmp_path / "whole", *common))
    lr_at = train.lr_at

    def interrupt_at_step_3(step, total, args):
        if step == 2:
            signal.raise_signal(signal.SIGINT)
        return lr_at(step, total, args)
    monkeypatch.setattr(train, "lr_at", interrupt_at_step_3)
    with pytest.raises(SystemExit) as stop:
        train.main(args_for(data, tmp_path / "split", *common, "--overwrite"))  # not reused by --resume
    assert stop.value.code == 130  # interrupted (README: exit codes)
    assert [p.name for p in trainstate.checkpoints(tmp_path / "split")] == ["step-3"]
    monkeypatch.setattr(train, "lr_at", lr_at)
    train.main(["--resume", str(tmp_path / "split")])
    a, b = losses(tmp_path / "whole"), losses(tmp_path / "split")
    assert len(a) == len(b) == 5
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-6


def test_nan_loss_stops_and_keeps_last_good_checkpoint(data, tmp_path, small, monkeypatch):
    real_loss = train.batch_loss
    calls = []

    def loss_nan_at_step_4(*a, **k):
        value = real_loss(*a, **k)
        if torch.is_grad_enabled():
            calls.append(1)
            if len(calls) == 4:
                return value * float("nan")
        return value
    monkeypatch.setattr(train, "batch_loss", loss_nan_at_step_4)
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=r"step 4: the loss is nan .*last good checkpoint is .*step-2"):
        train.main(args_for(data, out, "--model", "tiny", "--max-steps", 6, "--save-interval", 2))
    assert [p.name for p in trainstate.checkpoints(out)] == ["step-2"]
    assert not (out / "final").exists()
    assert trainstate.load_trainer_state(out / "step-2")["step"] == 2


@pytest.mark.parametrize("fmt_name", ["gemma3", "gemma4", "llama3.2", "qwen3"])
def test_tiny_final_is_a_model_directory(data, tmp_path, small, fmt_name):
    """OUT/final of the demo loads like any checkpoint: same logits as the trained model, its tokenizer,
    and the chat format it was trained with."""
    out = tmp_path / "run"
    model = train.main(args_for(data, out, "--model", "tiny", "--format", fmt_name, "--max-steps", 2))
    loaded = load_pretrained(str(out / "final"))
    assert loaded.config.model_type == {"gemma3": "gemma3_text", "gemma4": "gemma4_text"}.get(fmt_name, "llama")
    ids = torch.arange(40)[None]
    with torch.no_grad():
        assert torch.equal(loaded(ids), model.eval()(ids))
    assert read_chat_format(out / "final") == fmt_name
    tokenizer = Tokenizer.from_dir(out / "final")
    assert tokenizer.stop_ids(get_format(fmt_name)) and tokenizer.pad_token == "<pad>"
    assert tokenizer.bos_token == {"gemma3": "<bos>", "gemma4": "<bos>", "llama3.2": "<|begin_of_text|>", "qwen3": None}[fmt_name]
    for token in get_format(fmt_name).control_tokens:  # the format's control strings are single tokens
        assert len(tokenizer.encode(token)) == 1


def test_export_flag_and_command_merge_the_adapter(data, base_dir, tmp_path):
    """--export and `python -m minifc.export` both write a merged model computing what base + adapter does."""
    out = tmp_path / "run"
    model = train.main(args_for(data, out, "--model", base_dir, "--max-steps", 2, "--lr", 1e-2, "--export"))
    export.main(["--model", str(base_dir), "--adapter", str(out / "final"), "--out", str(tmp_path / "cli"),
                 "--dtype", "float32"])
    ids = torch.arange(40)[None]
    with torch.no_grad():
        expected = model.eval()(ids)
        for directory in (out / "merged", tmp_path / "cli"):
            torch.testing.assert_close(load_pretrained(str(directory))(ids), expected, rtol=0, atol=1e-5)


def test_checkpoint_is_atomic(tmp_path):
    """A save that fails half-way leaves neither step-N nor a partial directory behind."""
    def write_weights(directory):  # save_checkpoint hands it an empty temporary directory
        (directory / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        trainstate.save_checkpoint(tmp_path / "step-5", write_weights, {"step": 5})
    assert list(tmp_path.iterdir()) == []
    trainstate.save_checkpoint(tmp_path / "step-5", lambda d: None, {"step": 5})
    assert [p.name for p in tmp_path.iterdir()] == ["step-5"]
    assert trainstate.latest_checkpoint(tmp_path) == tmp_path / "step-5"


def test_grad_accumulation_equals_one_big_batch(data, base_dir, tmp_path):
    """2 micro-batches of 1 row == 1 micro-batch of 2 rows: the loss is normalised by the step's
    trained tokens, not per micro-batch, so losses and updates agree."""
    common = ["--model", base_dir, "--max-steps", 3, "--lr", 1e-2, "--max-len", 512]
    one = train.main(args_for(data, tmp_path / "one", *common, "--batch-tokens", 1024))
    two = train.main(args_for(data, tmp_path / "two", *common, "--batch-tokens", 512, "--grad-accum", 2))
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-5
    for p, q in zip(one.parameters(), two.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-5)


def test_refuses_fp16_and_unknown_model(capsys):
    with pytest.raises(SystemExit):  # not offered: Gemma 3's activations overflow float16
        train.parse_args(["--dtype", "float16"])
    assert "argument --dtype: invalid choice: 'float16'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="Known short names: .*gemma-3-1b.*llama-3.2-1b"):
        train.parse_args(["--model", "no-such-model"])


def test_refuses_to_overwrite_another_run(data, tmp_path):
    out = tmp_path / "run"
    trainstate.save_checkpoint(out / "step-7", lambda d: None, {"step": 7})
    with pytest.raises(SystemExit, match=r"holds another run's checkpoints \(step-7\).*--resume.*--overwrite"):
        train.main(args_for(data, out, "--model", "tiny"))
    assert (out / "step-7").is_dir()


def trained_tokens(printed: str) -> int:
    """The trained tokens of the training data, from the encoding report train.py prints."""
    return int(re.search(r"training data: encoded \d+ examples \(\d+ tokens, (\d+) trained\)", printed).group(1))


def test_train_on_flags_train_more_and_are_kept_on_resume(data, base_dir, tmp_path, capsys):
    """--train-on assistant,user also trains the user turns (the short built-in conversations have no
    tool results): more trained tokens than the default. The flags are saved, and a resumed run keeps them."""
    common = ["--model", base_dir, "--max-steps", 1]
    train.main(args_for(data, tmp_path / "default", *common))
    default = trained_tokens(capsys.readouterr().out)
    out = tmp_path / "users"
    train.main(args_for(data, out, *common, "--train-on", "assistant,user", "--last-turn-only"))
    more = trained_tokens(capsys.readouterr().out)
    assert more > default
    saved = json.loads((out / "args.json").read_text())
    assert (saved["train_on"], saved["last_turn_only"]) == ("assistant,user", True)
    train.main(["--resume", str(out), "--max-steps", "2"])
    assert trained_tokens(capsys.readouterr().out) == more
    assert json.loads((out / "args.json").read_text())["train_on"] == "assistant,user"
    with pytest.raises(SystemExit, match="--train-on: .*assistant, tool, user, system"):
        train.main(args_for(data, tmp_path / "bad", *common, "--train-on", "assistant,robot"))


def test_resume_refuses_flags_that_would_change_the_run(data, base_dir, tmp_path):
    """--resume keeps the base model, the adapter's shape and the data as saved: a flag that would change
    them is refused before anything is written (args.json stays as it was); --max-steps may change."""
    out = tmp_path / "run"
    train.main(args_for(data, out, "--model", base_dir, "--max-steps", 1))
    saved = (out / "args.json").read_text()
    for flags, named in ([["--model", "tiny"], rf"--model: '{re.escape(str(base_dir))}' -> 'tiny'"],
                         [["--lora-r", "8", "--seed", "3"], r"--lora-r: 16 -> 8; --seed: 0 -> 3"],
                         [["--max-len", "256"], r"--max-len: 512 -> 256"]):
        with pytest.raises(SystemExit, match=f"^--resume {re.escape(str(out))} continues the run .*{named}\\. Drop"):
            train.main(["--resume", str(out), *flags])
        assert (out / "args.json").read_text() == saved
    train.main(["--resume", str(out), "--max-steps", "2"])
    assert json.loads((out / "args.json").read_text())["max_steps"] == 2 and losses(out)[-1] > 0


@pytest.fixture
def no_model_load(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a model was loaded")
    monkeypatch.setattr(train, "load_pretrained", fail)
    monkeypatch.setattr(train, "save_tiny", fail)


def test_bad_data_stops_before_any_model_is_loaded(data, base_dir, tmp_path, no_model_load, capsys):
    with pytest.raises(SystemExit, match="no-such-file.jsonl: no such file or directory"):
        train.main(args_for(data, tmp_path / "a", "--model", "tiny", "--data", tmp_path / "no-such-file.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')  # nothing to train on
    with pytest.raises(SystemExit, match="no usable training examples"):
        train.main(args_for(data, tmp_path / "b", "--model", "tiny", "--data", bad))
    assert "skipped 1 x nothing_to_train" in capsys.readouterr().out  # the validation summary is printed
    with pytest.raises(SystemExit, match="no trained tokens left after encoding"):
        train.main(args_for(data, tmp_path / "c", "--model", str(base_dir), "--max-len", 16))
    assert "dropped 40 (longer than max_len=16)" in capsys.readouterr().out


def test_reasoning_the_format_cannot_show_is_counted_or_refused_with_strict(data, base_dir, tmp_path, capsys):
    thinking = tmp_path / "thinking.jsonl"
    thinking.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                 {"role": "assistant", "reasoning": "Greet back.", "content": "Hello!"}]}) + "\n")
    with pytest.raises(SystemExit, match=r"thinking.jsonl:1: an assistant message has reasoning, which the gemma3 format"):
        train.main(args_for(data, tmp_path / "a", "--model", str(base_dir), "--data", thinking, "--strict"))
    train.main(args_for(data, tmp_path / "b", "--model", str(base_dir), "--data", thinking, "--max-steps", 1))
    assert "1 assistant turns carry reasoning this format has no place for: trained without it (first at " \
        f"{thinking}:1)" in capsys.readouterr().out


@pytest.mark.slow
def test_tiny_demo_learns(data, tmp_path, capsys):
    """The offline demo at its real size, end to end, in half a minute: 100 steps on the 12 shortest single
    calls of the built-in training data cut the held-out loss (6 short conversations) by a fifth, and the
    trained model, prompted with those conversations as eval.py prompts them, writes at least half of
    their calls exactly, arguments included (rendering, masking, packing, the loss, decoding, parsing and
    the checker agree). The before/after check runs around training, as README says."""
    fmt = get_format("gemma3")
    singles = [e for e in load_examples(BUILTIN_TRAIN)[0] if e.category == "single_call"]
    calls = sorted(singles, key=lambda e: len(fmt.render(e.messages, e.tools).text))[:12]
    short = (write_jsonl(tmp_path / "calls.jsonl", calls), data[1])
    out = tmp_path / "tiny"
    model = train.main(args_for(short, out, "--model", "tiny", "--max-steps", 100, "--eval-interval", 100,
                                "--check-examples", 2))
    _, tokenizer, fmt = load(out / "final", weights=False)
    heldout = [r["heldout_loss"] for r in MetricsLog(out / "metrics.jsonl").read() if "heldout_loss" in r]
    # a random model: uniform over the vocabulary (the whole pieces of these examples, and 256 characters)
    assert heldout[0] == pytest.approx(math.log(tokenizer.vocab_size), abs=0.1)
    assert heldout[-1] < 0.8 * heldout[0]
    printed = capsys.readouterr().out
    before = printed.index("tool-call check on 2 held-out examples, before training:")
    assert before < printed.index("step 1/100 |")  # printed before training starts, as README says
    assert "tool-call check on 2 held-out examples, before and after training" in printed
    records, _ = run_eval(model, tokenizer, fmt, cases_from_examples(calls), max_new_tokens=64)
    assert sum(r["exact"] for r in records) >= 6, [r["reason"] for r in records]  # 12 of 12 when written


@pytest.mark.parametrize("flags, message", [
    (["--lr", "-1"], r"--lr must be > 0, got -1.0"), (["--lr", "0"], r"--lr must be > 0, got 0.0"),
    (["--epochs", "0"], r"--epochs must be > 0, got 0.0"), (["--lora-alpha", "0"], r"--lora-alpha must be > 0"),
    (["--lora-dropout", "2"], r"--lora-dropout must be in \[0, 1\), got 2.0"),
    (["--loss-chunk", "0"], r"--loss-chunk must be >= 1, got 0"), (["--seed", "-1"], r"--seed must be >= 0"),
    (["--warmup-steps", "-2"], r"--warmup-steps must be >= 0"),
    (["--min-lr-ratio", "1.5"], r"--min-lr-ratio must be in \[0, 1\]"),
    (["--grad-accum", "0"], r"--grad-accum must be >= 1, got 0"),
    (["--max-len", "2048", "--batch-tokens", "1024"], r"--batch-tokens \(1024\) must be at least --max-len \(2048\)"),
])
def test_flags_out_of_range_are_refused_before_anything_runs(flags, message):
    with pytest.raises(SystemExit, match=f"^{message}"):
        train.parse_args(["--model", "tiny", *flags])
