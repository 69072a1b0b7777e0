"""Training on several processes started by torchrun: DDP or FSDP2, on torch.distributed alone.

    torchrun --nproc-per-node 4 train.py --model llama-3.1-8b                    # DDP: a replica per rank
    torchrun --nproc-per-node 4 train.py --model gemma-3-27b --parallel fsdp     # FSDP2: weights sharded

    setup = init(args.parallel, args.device)          # process group from torchrun's environment
    result = main_only(setup, fn, *a)                 # fn on rank 0 only (files), its result on every rank
    model = load_sharded(directory, device, dtype, add_lora)   # FSDP2: each rank reads only its shards
    loss_fn = wrap(setup, model)                      # loss_fn(batch, chunk, normalizer, sync) through DDP/FSDP
    copy = full_copy(setup, model, base=False)        # rank 0: a plain model with the gathered weights

What is split: each optimizer step's packed rows (collate.epoch_batches(part=(rank, world))), so --batch-tokens
and --grad-accum describe the whole step, as in one process. A step's loss is divided by the trained tokens
of the whole step (all-reduced), times the world size, because DDP and FSDP average gradients over ranks:
N ranks then compute the update of one process with the same flags. With --parallel fsdp every block is
one FSDP2 group (fully_shard) and the root (embeddings, final norm, lm_head) another; under LoRA the
adapters of a block form a group of their own, so that the trained fp32 adapters and the frozen (bf16) base
never share one (FSDP2 reduces one gradient dtype per group). The model is built on the meta device and
each rank reads only its rows of each tensor from the safetensors files.
Checkpoints and exports are written by rank 0 from gathered tensors in the single-process layout, so a run
resumes with any number of ranks (and any --parallel).
"""

import math
import os
import sys
import traceback
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.nn as nn
from safetensors.torch import load_file

from .adapters import _PEFT_PREFIX, _WEIGHTS
from .checkpoint import (_DTYPES, CheckpointError, _read_header, _read_tensor, _safetensors_files, _unused_kv_weight,
                         load_config, minifc_name, resolve_checkpoint_dir)
from .lora import LoRALinear, lora_layers, wrap_layers
from .loss import batch_loss
from .model import Transformer


@dataclass
class Setup:
    rank: int = 0
    world: int = 1
    mode: str = "none"  # "none" (one process), "ddp" or "fsdp"

    @property
    def part(self) -> tuple[int, int]:
        return self.rank, self.world


ONE = Setup()  # one process, no torchrun


def env_world() -> int | None:
    """torchrun's WORLD_SIZE, or None when this process was not started by torchrun."""
    return int(os.environ["WORLD_SIZE"]) if "WORLD_SIZE" in os.environ else None


def parallel_mode(requested: str) -> str:
    """--parallel auto|ddp|fsdp -> the mode to run; a mode that needs torchrun without it is refused."""
    world = env_world()
    if world is None:
        if requested != "auto":
            raise ValueError(f"--parallel {requested} needs the processes torchrun starts: run "
                             f"`torchrun --nproc-per-node N train.py ... --parallel {requested}` (N GPUs)")
        return "none"
    return "ddp" if requested == "auto" else requested


def init(requested: str, device: str) -> Setup:
    """Join torchrun's process group (NCCL on CUDA, gloo on CPU); ranks other than 0 print nothing to stdout."""
    mode = parallel_mode(requested)
    if mode == "none":
        return ONE
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    setup = Setup(dist.get_rank(), dist.get_world_size(), mode)
    if setup.rank != 0:
        sys.stdout = open(os.devnull, "w")  # one log: rank 0's (errors still go to each rank's stderr)
    return setup


def local_device(device: str) -> str:
    """The device of this rank: cuda:LOCAL_RANK under torchrun for any CUDA device."""
    under_torchrun = device.startswith("cuda") and env_world() is not None
    return f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if under_torchrun else device


def barrier(setup: Setup):
    if setup.mode != "none":
        dist.barrier()


def finish(setup: Setup):
    if setup.mode != "none":
        dist.destroy_process_group()


@contextmanager
def rank_errors():
    """Under torchrun: an error ends this rank with its rank and message as the last line of stderr
    (torchrun then stops the other ranks and names the failed one). One process: nothing changes."""
    if env_world() is None:
        yield
        return
    rank = os.environ.get("RANK", "?")
    try:
        yield
    except SystemExit as stop:
        if not isinstance(stop.code, str):  # an exit code alone (0, or a status such as Ctrl-C's) passes
            raise
        print(f"rank {rank}: {stop.code}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except BaseException as error:  # a bug or a crash: the traceback, then the one line
        traceback.print_exc()
        print(f"rank {rank}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def main_only(setup: Setup, fn, *args):
    """fn(*args) on rank 0 only (it writes files), its result on every rank; an error it raises (ValueError,
    OSError, SystemExit) is raised on every rank, so all stop with the same message."""
    if setup.mode == "none":
        return fn(*args)
    box = [None]
    if setup.rank == 0:
        try:
            box[0] = ("ok", fn(*args))
        except (ValueError, OSError, SystemExit) as error:
            box[0] = ("error", error)
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def all_sum(values: list[float], device) -> list[float]:
    """Elementwise sum over ranks (fp64, so token counts stay exact)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def step_normalizer(setup: Setup, batches, device):
    """What a rank divides its summed loss by: the step's trained tokens on every rank together, over the
    world size (DDP and FSDP average the ranks' gradients). One process: the count, as an int (unchanged)."""
    local = sum(b.num_trained for b in batches)
    if setup.mode == "none":
        return local
    count = torch.tensor(float(local), device=device)
    dist.all_reduce(count)  # stays on the device: no host sync
    return count / setup.world


def step_stats(setup: Setup, loss, norm, batches, stop: list, device) -> tuple[float, float, list[int], bool]:
    """(loss, grad norm, [tokens, trained tokens], whether to stop) of a step, as numbers: one process reads
    its own (the step's one host sync); several add up their losses and counts, and stop together, after
    the same step, if any of them was asked to (Ctrl-C)."""
    counts = [sum(b.num_tokens for b in batches), sum(b.num_trained for b in batches)]
    if setup.mode == "none":
        return loss.item(), norm.item(), counts, bool(stop)
    loss, tokens, trained, stopping = all_sum([loss.item() / setup.world, *counts, len(stop)], device)
    return loss, norm.item(), [int(tokens), int(trained)], stopping > 0


def full_value(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor (FSDP2's sharded parameter, gradient norm) as the whole tensor; other tensors as they are."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor  # no import of DTensor (seconds)


# ------------------------------------------------------------------------------------ wrapping the model

class _StepLoss(nn.Module):
    """batch_loss as a module's forward: the one call DDP hooks for its gradient all-reduce."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch, chunk_size, normalizer):
        return batch_loss(self.model, batch, chunk_size, normalizer)


def wrap(setup: Setup, model):
    """loss_fn(batch, chunk_size, normalizer, sync) for training, or None for batch_loss as it is (one
    process, and FSDP: the model is sharded already by load_sharded, and batch_loss calls
    model.hidden_states, registered as a forward method so that FSDP gathers and frees the weights around
    it). DDP: through DistributedDataParallel, all-reducing gradients on the step's last micro-batch (sync)."""
    if setup.mode != "ddp":
        return None
    # NF4 codes are buffers that never change: not synced at every forward
    ddp = nn.parallel.DistributedDataParallel(_StepLoss(model), forward_sync_buffers=False)

    def loss_fn(batch, chunk, normalizer, sync):
        with nullcontext() if sync else ddp.no_sync():
            return ddp(batch, chunk, normalizer)
    return loss_fn


def shard(model: Transformer):
    """FSDP2: each block one group, its LoRA adapters (fp32, trained) another, the root (embeddings, final
    norm, lm_head) the last; forward and hidden_states gather the root group."""
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method
    for block in model.model.layers:
        adapters = [part for layer in lora_layers(block).values() for part in (layer.lora_A, layer.lora_B)]
        if adapters:
            fully_shard(adapters)
        fully_shard(block)
    fully_shard(model)
    register_fsdp_forward_method(model, "hidden_states")


def _rows(param) -> tuple[int, int]:
    """The rows [start, stop) of the whole tensor held by this rank's shard (FSDP2 shards dim 0 in chunks)."""
    local = param.to_local().shape[0]
    start = dist.get_rank() * math.ceil(param.shape[0] / dist.get_world_size())
    return min(start, param.shape[0]), min(start, param.shape[0]) + local


def load_sharded(name_or_path: str, device, dtype: torch.dtype, add_lora=None, adapter=None) -> Transformer:
    """FSDP2 loading: the model is built on the meta device, (LoRA added by `add_lora(model)`), sharded,
    then each rank allocates and reads only its own rows of every tensor of the safetensors files (a
    few bytes more than its share of the weights in host memory, never the whole model). LoRA A is drawn
    whole with the single-process RNG sequence and sliced, so it equals a one-process run's; `adapter`
    (a directory) then loads saved adapters instead."""
    directory = resolve_checkpoint_dir(name_or_path)
    config = load_config(directory)
    with torch.device("meta"):  # no memory, and no random draws
        model = Transformer(config).to(dtype)
        if add_lora is not None:
            add_lora(model)  # adapters in fp32 whatever the base dtype (lora.py)
    shard(model)
    model.to_empty(device=device)
    _read_shards(model, directory)
    _init_lora(model, device)
    if adapter is not None:
        _load_adapter_shards(model, adapter)
    # FSDP2 makes its buffers for gathered weights at the first forward: made under generate.py's
    # inference_mode (the tool-call check comes first), training could not write into them
    with torch.no_grad():
        model(torch.zeros(1, 1, dtype=torch.long, device=device))
    model.reshard()  # the root group (embeddings, final norm, lm_head) back to shards until the next forward
    model.checkpoint_dir = directory
    return model.eval()


def _read_shards(model, directory):
    """Each parameter's rows of this rank, read from the files (checkpoint.load_pretrained's checks); saved
    buffers (Gemma 4's layer_scalar) are not sharded, and read whole."""
    params = dict(model.named_parameters())  # a tied lm_head is listed once, as the embedding
    buffers = {name: b for name, b in model.named_buffers() if name in model.state_dict()}
    loaded = set()
    for path in _safetensors_files(directory):
        with open(path, "rb") as f:
            header_size, header = _read_header(f, path)
            for hf_name, entry in header.items():
                name = minifc_name(hf_name)
                if name is None or _unused_kv_weight(model.config, name) or (
                        name == "lm_head.weight" and name not in params):
                    continue  # not the decoder's (load_pretrained warns), or the tied head's copy
                target = params.get(name, buffers.get(name))
                if target is None:
                    raise CheckpointError(f"{path}: unexpected tensor {hf_name!r}: it is not part of a "
                                          f"{model.config.model_type} model as described by config.json")
                if tuple(entry["shape"]) != tuple(target.shape):
                    raise CheckpointError(f"{path}: tensor {hf_name!r} has shape {tuple(entry['shape'])} but "
                                          f"config.json implies {tuple(target.shape)}")
                with torch.no_grad():
                    if name in buffers:
                        target.copy_(_read_tensor(f, entry, 8 + header_size))
                    else:
                        target.to_local().copy_(_read_rows(f, entry, 8 + header_size, *_rows(target)))
                loaded.add(name)
    missing = [name for name in [*params, *buffers] if name not in loaded and ".lora_" not in name]
    if missing:
        raise CheckpointError(f"{directory}: tensor {missing[0]!r} is missing from the safetensors files "
                              f"(and {len(missing) - 1} more): config.json and the weights do not match")


def _read_rows(f, entry: dict, data_start: int, start: int, stop: int) -> torch.Tensor:
    """Rows [start, stop) of a tensor in an open safetensors file: only their bytes are read."""
    shape, dtype = entry["shape"], _DTYPES[entry["dtype"]]
    begin, end = entry["data_offsets"]
    if end - begin != dtype.itemsize * torch.Size(shape).numel():
        raise CheckpointError(f"{f.name}: tensor of shape {shape} in {end - begin} bytes: the file is damaged "
                              "(download it again)")
    row_bytes = dtype.itemsize * torch.Size(shape[1:]).numel()
    raw = torch.empty((stop - start) * row_bytes, dtype=torch.uint8)
    f.seek(data_start + begin + start * row_bytes)
    if f.readinto(raw.numpy()) != raw.numel():
        raise CheckpointError(f"{f.name}: file is truncated (download it again)")
    return raw.view(dtype).reshape(stop - start, *shape[1:])


@torch.no_grad()
def _init_lora(model, device):
    """LoRALinear's initialisation, made whole in module order by LoRALinear itself (so with the random
    draws of one process), then sliced. It sees only a frozen layer's sizes and device, no weight."""
    for layer in lora_layers(model).values():
        shape_only = SimpleNamespace(in_features=layer.in_features, out_features=layer.out_features, bias=None,
                                     weight=torch.empty(0, device=device))
        whole = LoRALinear(shape_only, layer.r, layer.alpha, layer.dropout_p, layer.rslora)
        for part in ("lora_A", "lora_B"):
            param = getattr(layer, part).weight
            start, stop = _rows(param)
            param.to_local().copy_(getattr(whole, part).weight[start:stop])


@torch.no_grad()
def _load_adapter_shards(model, directory):
    """This rank's rows of every adapter weight saved by adapters.save_adapter (a resumed FSDP run)."""
    tensors = load_file(f"{directory}/{_WEIGHTS}")
    for name, layer in lora_layers(model).items():
        for part in ("lora_A", "lora_B"):
            param = getattr(layer, part).weight
            start, stop = _rows(param)
            param.to_local().copy_(tensors[f"{_PEFT_PREFIX}{name}.{part}.weight"][start:stop])


# ----------------------------------------------------------------------------- gathering, for files

def full_copy(setup: Setup, model, base: bool = True):
    """For writing files on rank 0: the model itself when rank 0 holds every weight (one process, DDP);
    under FSDP a plain CPU Transformer with the gathered weights on rank 0 (None elsewhere; every rank
    takes part in the gathering). base=False gathers only the LoRA adapters (the base stays on meta),
    which is all an adapter checkpoint needs."""
    if setup.mode != "fsdp":
        return model
    layers = lora_layers(model)
    gathered = {}
    for name, tensor in model.state_dict().items():
        if base or ".lora_" in name:
            whole = full_value(tensor)
            if setup.rank == 0:
                gathered[name] = whole.detach().cpu()
    if setup.rank != 0:
        return None
    with torch.device("meta"):
        copy = Transformer(model.config)
    for settings in {(m.r, m.alpha, m.dropout_p, m.rslora) for m in layers.values()}:
        wrap_layers(copy, [n for n, m in layers.items() if (m.r, m.alpha, m.dropout_p, m.rslora) == settings],
                    *settings)
    copy.load_state_dict(gathered, strict=False, assign=True)
    copy.tie_weights()
    return copy


def optimizer_state(setup: Setup, optimizer) -> dict | None:
    """optimizer.state_dict() in the single-process layout on rank 0 (FSDP's sharded states gathered)."""
    state = optimizer.state_dict()
    if setup.mode == "fsdp":
        state["state"] = {i: {k: full_value(v).cpu() for k, v in s.items()} for i, s in state["state"].items()}
    return state if setup.rank == 0 else None


def load_optimizer_state(optimizer, state: dict):
    """Load a single-process-layout optimizer state; under FSDP each rank keeps its rows of each tensor."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for i, values in state["state"].items():
        param = params[i]
        if hasattr(param, "to_local"):  # a DTensor
            from torch.distributed.tensor import DTensor
            start, stop = _rows(param)
            values.update({k: DTensor.from_local(v[start:stop].to(param.device), param.device_mesh, param.placements,
                                                 shape=param.shape, stride=param.stride())
                           for k, v in values.items() if v.shape == param.shape})
    optimizer.load_state_dict(state)


def rng_states(setup: Setup, rng: dict) -> list[dict] | None:
    """Every rank's RNG states (dropout draws differ by rank), gathered on rank 0."""
    if setup.mode == "none":
        return None
    states = [None] * setup.world
    dist.all_gather_object(states, rng)
    return states


def check_divisible(batch_tokens: int, max_len: int):
    """Every rank takes whole rows of every micro-batch: the rows must divide among torchrun's ranks."""
    rows, world = batch_tokens // max_len, env_world() or 1
    if rows % world:
        raise ValueError(f"--batch-tokens {batch_tokens} // --max-len {max_len} = {rows} rows per micro-batch do not "
                         f"divide among {world} ranks: make --batch-tokens a multiple of {world} x --max-len "
                         f"= {world * max_len}")
