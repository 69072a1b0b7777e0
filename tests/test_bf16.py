"""The bf16 training loop, on CPU: LoRA with a frozen bf16 base and fp32 adapters (what train.py does on
CUDA by default), and --full with fp32 weights under bf16 autocast, against the same runs in fp32."""

from pathlib import Path

import pytest
import torch

import train
from minifc import tiny
from minifc.checkpoint import load_pretrained
from minifc.lora import lora_parameters
from test_train import SMALL, args_for, data, losses, one_thread, small  # noqa: F401 (fixtures)

# bf16 keeps 8 significant bits. The loss is summed in fp32 from logits upcast to fp32 (loss.py), so a
# bf16 run must agree with the fp32 run to better than one bf16 rounding of the loss itself: 2^-8
# relative (neighbouring bf16 numbers are 2^-8 to 2^-7 apart, relatively). Measured over the 10 steps:
# <= 1.1e-4 (LoRA, bf16 base) and <= 8.7e-4 (--full, autocast). The learning rates are modest on
# purpose: Adam's first updates are about lr * sign(gradient), so wherever bf16 flips the sign of a
# tiny gradient component the two runs take a different step (at lr 3e-2 LoRA's bf16 and fp32 losses
# drift 4% apart within 8 steps, which would hide a real error).
REL_TOL = 2 ** -8
STEPS = 10


@pytest.fixture(scope="module")
def trained_base(data, tmp_path_factory):
    """A base model that is not at its random init: the small demo model after 10 full fine-tuning steps
    (a random init predicts the uniform distribution, whatever the precision)."""
    out = tmp_path_factory.mktemp("base")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tiny, "SIZES", SMALL)
        train.main(args_for(data, out, "--model", "tiny", "--max-steps", 10, "--lr", 1e-2, "--device", "cpu"))
    return out / "final"


@pytest.fixture(scope="module")
def one_batch(data, tmp_path_factory):
    """(train, held-out) files where the training data is 3 short conversations: one micro-batch, so
    every step trains on the same tokens and its loss must fall step after step."""
    path = tmp_path_factory.mktemp("few") / "train.jsonl"
    path.write_text("".join(Path(data[0]).read_text().splitlines(keepends=True)[:3]))
    return path, data[1]


DEVICES = [pytest.param("cpu"), pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA (the GPU checklist runs it)"))]


def run(data, out, monkeypatch, *flags):
    """train.main on the data; returns (model, optimizer, per-step losses)."""
    optimizers = []
    make_optimizer = train.make_optimizer

    def keep(args, params):
        optimizers.append(make_optimizer(args, params))
        return optimizers[-1]
    monkeypatch.setattr(train, "make_optimizer", keep)
    model = train.main(args_for(data, out, "--max-steps", STEPS, "--warmup-steps", 1,
                                "--schedule", "constant", "--save-interval", 1000, *flags))
    return model, optimizers[0], losses(out)


def all_falling(losses, by):
    """The loss ends at least `by` below where it started and never rises above its start."""
    return losses[-1] <= losses[0] - by and max(losses[1:]) < losses[0]


def relative_diffs(a, b):
    return [abs(x - y) / abs(y) for x, y in zip(a, b)]


@pytest.mark.parametrize("device", DEVICES)
def test_lora_bf16_loop(one_batch, trained_base, tmp_path, monkeypatch, device):
    common = ["--model", trained_base, "--lr", 2e-3, "--device", device]
    _, _, fp32 = run(one_batch, tmp_path / "fp32", monkeypatch, *common, "--dtype", "float32")
    model, optimizer, bf16 = run(one_batch, tmp_path / "bf16", monkeypatch, *common, "--dtype", "bfloat16")
    diffs = relative_diffs(bf16, fp32)
    print(f"LoRA on {device}: fp32 losses {fp32}\n      bf16 losses {bf16}\n      relative differences {diffs}")
    # (a) the same losses to bf16 precision, and really computed in bf16 (not silently in fp32)
    assert max(diffs) <= REL_TOL and bf16[0] != fp32[0]
    # (b) it learns: every step trains on the same batch, so its loss falls (measured 5.377 -> 5.296),
    # and as far as in fp32 (adapter updates are not lost to bf16 rounding: the adapters are fp32)
    assert all_falling(bf16, by=0.05) and all_falling(fp32, by=0.05)
    assert bf16[0] - bf16[-1] == pytest.approx(fp32[0] - fp32[-1], rel=0.2)
    # (c) frozen base in bf16; adapters, their gradients' consumer (AdamW) and its state in fp32
    trainable = {id(p) for p in lora_parameters(model)}
    frozen = [p for p in model.parameters() if id(p) not in trainable]
    assert frozen and all(p.dtype == torch.bfloat16 and not p.requires_grad for p in frozen)
    assert all(p.dtype == torch.float32 and p.requires_grad for p in lora_parameters(model))
    state = [optimizer.state[p] for group in optimizer.param_groups for p in group["params"]]
    assert {id(p) for group in optimizer.param_groups for p in group["params"]} == trainable
    assert len(state) == len(trainable)
    assert all(s["exp_avg"].dtype == s["exp_avg_sq"].dtype == torch.float32 for s in state)


@pytest.mark.parametrize("device", DEVICES)
def test_full_bf16_autocast_loop(one_batch, small, tmp_path, monkeypatch, device):
    """--full --dtype bfloat16: fp32 weights and optimizer state, matmuls in bf16 under autocast."""
    common = ["--model", "tiny", "--full", "--lr", 3e-3, "--device", device]
    _, _, fp32 = run(one_batch, tmp_path / "fp32", monkeypatch, *common, "--dtype", "float32")
    model, optimizer, bf16 = run(one_batch, tmp_path / "bf16", monkeypatch, *common, "--dtype", "bfloat16")
    diffs = relative_diffs(bf16, fp32)
    print(f"full on {device}: fp32 losses {fp32}\n      bf16 losses {bf16}\n      relative differences {diffs}")
    assert max(diffs) <= REL_TOL and bf16[0] != fp32[0]
    assert all_falling(bf16, by=0.5) and all_falling(fp32, by=0.5)  # measured 6.24 -> 5.01
    assert bf16[0] - bf16[-1] == pytest.approx(fp32[0] - fp32[-1], rel=0.05)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(s["exp_avg"].dtype == torch.float32 for s in optimizer.state.values())
    assert load_pretrained(str(tmp_path / "bf16" / "final")).model.embed_tokens.weight.dtype == torch.float32
