"""Bad input never ends in a traceback (issue 13): each case reproduces the input and asserts the message
(its key parts: file, field, fix) and, for the commands, the exit code; a property-based fuzz of the
converters and validation. Validation rules themselves are in test_data.py, the eval guards in
test_eval_cli.py, the flags of train.py in test_train.py."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minifc import cli, trainstate

ROOT = Path(__file__).resolve().parent.parent


def command(*argv, env=None, timeout=120) -> subprocess.CompletedProcess:
    """Run one of the top-level commands as a user does (a fresh interpreter), with 1 thread."""
    environment = {key: value for key, value in os.environ.items() if key != "MINIFC_DEBUG"}
    environment.update(OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, *map(str, argv)], cwd=ROOT, capture_output=True, text=True,
                          env=environment, timeout=timeout)


# --- checkpoints: a full disk, a damaged trainer state, leftovers of a killed save, --out a file ----------

@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"),
                                     RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")])
def test_a_full_disk_while_saving_is_one_clear_error_and_leaves_nothing(tmp_path, failure, monkeypatch):
    def write_weights(directory):
        (directory / "adapter_model.safetensors").write_bytes(b"half")
    monkeypatch.setattr(trainstate.torch, "save", lambda *a, **k: (_ for _ in ()).throw(failure))
    with pytest.raises(OSError) as error:
        trainstate.save_step(tmp_path, 4, (0, 4), torch.optim.SGD([torch.zeros(1, requires_grad=True)]),
                             write_weights, keep=3)
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'step-4'}: the checkpoint could not be written ({failure}); ")
    assert "GiB free on that disk. Nothing was half-written and the earlier checkpoints are intact" in message
    assert message.endswith("continue with --resume")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, why", [
    (b"not a torch file", "not readable (UnpicklingError"),
    (None, "not step, epoch, batch, optimizer, rng"),
])
def test_a_damaged_trainer_state_names_the_file_and_the_way_out(tmp_path, content, why):
    path = tmp_path / "step-3" / "trainer_state.pt"
    path.parent.mkdir()
    if content is None:
        torch.save({"weights": 1}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError) as error:
        trainstate.load_trainer_state(path.parent)
    assert str(error.value).startswith(f"{path}: damaged, {why}")
    assert str(error.value).endswith(f"delete {path.parent} to resume from the checkpoint before it, or start "
                                     "over with --overwrite")


def test_leftovers_of_a_killed_save_are_cleaned_up_at_the_next_start(tmp_path, capsys):
    """A kill inside checkpoint.atomic_directory leaves `.X.partial` (unfinished: removed) or `.X.old` (a
    finished checkpoint being replaced: back to X if X is gone, else removed)."""
    for name in (".step-6.partial", ".step-4.old", ".step-2.old", "step-2", ".final.partial"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "trainer_state.pt").write_bytes(b"x")
    assert trainstate.prepare_run_dir(tmp_path, {}, resume=True, overwrite=False) == tmp_path / "step-4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["args.json", "step-2", "step-4"]
    printed = capsys.readouterr().out
    assert f"{tmp_path}: removed .step-6.partial, left by a save that was killed" in printed
    assert f"{tmp_path}: restored step-4 from .step-4.old, left by a save that was killed" in printed
    assert f"{tmp_path}: removed .step-2.old" in printed and f"{tmp_path}: removed .final.partial" in printed


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "run").write_text("x")
    message = f"^--out {tmp_path / 'run'} is a file, not a directory: choose another --out$"
    with pytest.raises(ValueError, match=message):
        trainstate.prepare_run_dir(tmp_path / "run", {}, resume=False, overwrite=False)


def test_sigterm_stops_the_loop_like_ctrl_c():
    """A scheduler's preemption is SIGTERM: the loop saves after the step; a second one terminates."""
    with trainstate.ctrl_c_stops() as stop:
        signal.raise_signal(signal.SIGTERM)
        assert stop == [True]
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) == signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # as before (pytest leaves it at the default)


# --- devices ------------------------------------------------------------------------------------------------

def test_a_device_torch_cannot_use_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.device_error("cpu") is None
    assert cli.device_error("cuda").startswith(f"--device cuda: CUDA is not available (torch {torch.__version__}: ")
    assert cli.device_error("cuda").endswith("drop --device to use the CPU")
    assert cli.device_error("gpu").startswith("--device gpu: not a device torch knows (")


# --- model directories: a damaged config.json, weights file or tokenizer; the hub offline ------------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from minifc.chat import get_format
    from tiny_checkpoint import format_tokenizer, gemma_hf_config, random_model, save_checkpoint

    fmt = get_format("gemma3")
    tokenizer = format_tokenizer(fmt, [fmt.render([{"role": "user", "content": "hello there"}]).text] * 3)
    config = gemma_hf_config(tokenizer.vocab_size)
    return save_checkpoint(tmp_path_factory.mktemp("model"), random_model(config), config, tokenizer)


def damaged_copy(model_dir, tmp_path, name, content) -> Path:
    import shutil

    copy = Path(shutil.copytree(model_dir, tmp_path / "model"))
    (copy / name).write_bytes(content(copy / name) if callable(content) else content)
    return copy


def config_with(**changes):
    return lambda path: json.dumps({**json.loads(path.read_text()), **changes}).encode()


@pytest.mark.parametrize("name, content, message", [
    ("config.json", b'{"model_type": "gemma3_text",', "config.json line 1: invalid JSON (Expecting"),
    ("config.json", b"\xff\xfe{}", "config.json: not UTF-8 text (invalid start byte); download it again"),
    ("config.json", b"[1, 2]", "config.json: must be a JSON object of the model's settings, got list"),
    ("config.json", config_with(hidden_size="64"), "config.json: hidden_size must be a positive integer, got '64'"),
    ("config.json", config_with(num_attention_heads=0), "config.json: num_attention_heads must be a positive integer"),
    ("config.json", config_with(rms_norm_eps=[1]), "config.json: cannot be read as a gemma3_text config (TypeError: "),
    ("config.json", config_with(rope_parameters=3), "config.json: cannot be read as a gemma3_text config "
                                                    "(TypeError: argument of type 'int' is not iterable); compare "
                                                    "it with the model's config.json on the hub"),
    ("model.safetensors", b"\x05\x00\x00\x00\x00\x00\x00\x00{}xyz", "model.safetensors: not a safetensors file minifc "
                                                                     "can read (JSONDecodeError: "),
    ("model.safetensors", b"\xff" * 8 + b"{}", "model.safetensors: not a safetensors file minifc can read (ValueError: "
                                               "a header of 18446744073709551615 bytes); download it again"),
    ("model.safetensors", lambda path: path.read_bytes()[:-100], "model.safetensors: file is truncated"),
    ("tokenizer.json", b'{"version": "1.0", "model": 3}', "tokenizer.json: the tokenizers library cannot read it ("),
    ("tokenizer_config.json", b"[]", "tokenizer_config.json: cannot be read ('list' object has no attribute 'get')"),
])
def test_a_damaged_model_directory_is_one_error_naming_the_file(model_dir, tmp_path, name, content, message):
    from minifc.loader import LoadError, load

    copy = damaged_copy(model_dir, tmp_path, name, content)
    with pytest.raises(LoadError) as error:
        load(str(copy), "gemma3")
    assert str(error.value).startswith(str(copy / name.split(".")[0])) and message in str(error.value)


def test_a_safetensors_entry_whose_size_disagrees_with_its_shape(model_dir, tmp_path):
    from minifc.checkpoint import CheckpointError, load_pretrained

    config = json.loads((model_dir / "config.json").read_text())
    shape = [config["vocab_size"], config["hidden_size"]]
    header = json.dumps({"model.embed_tokens.weight": {"dtype": "F32", "shape": shape, "data_offsets": [0, 8]}})
    content = len(header).to_bytes(8, "little") + header.encode() + bytes(8)
    copy = damaged_copy(model_dir, tmp_path, "model.safetensors", content)
    with pytest.raises(CheckpointError) as error:
        load_pretrained(str(copy))
    assert str(error.value) == (f"{copy / 'model.safetensors'}: tensor of shape {shape} in 8 bytes: the file is "
                                "damaged (download it again)")


def test_hub_offline_is_one_line_for_data_and_model(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    from minifc.checkpoint import CheckpointError, resolve_checkpoint_dir
    from minifc.data import DataError, load_examples

    def offline(*args, **kwargs):
        raise ConnectionError("[Errno 101] Network is unreachable\nmore detail")
    monkeypatch.setattr(huggingface_hub, "list_repo_files", offline)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    for spec in ("hf:someone/tools", "hf:someone/tools/train.jsonl"):
        with pytest.raises(DataError) as error:
            load_examples(spec)
        assert str(error.value) == (f"cannot download {spec}: offline? (ConnectionError: [Errno 101] Network is "
                                    "unreachable); check the network (and HF_TOKEN for a private or gated dataset), "
                                    "or download the file and pass its path to --data")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: (_ for _ in ()).throw(
        LocalEntryNotFoundError("offline")))
    with pytest.raises(CheckpointError, match="^cannot download google/some-model: offline"):
        resolve_checkpoint_dir("google/some-model")


# --- adapters: which base they belong to, fields of the wrong type -------------------------------------------

def lora_model(**changes):
    from minifc.lora import apply_lora
    from tiny_checkpoint import gemma_hf_config, random_model

    model = random_model({**gemma_hf_config(300), **changes})
    apply_lora(model, 4, 8, 0.0, ["q", "v"])
    return model


def test_an_adapter_records_its_base_and_is_refused_on_another_architecture(tmp_path):
    from minifc.adapters import load_adapter
    from minifc.chat import get_format
    from minifc.chat.lookup import read_record

    trained = lora_model()
    trainstate.weights_writer(trained, False, "google/base-it", {}, None, get_format("gemma3"))(tmp_path / "adapter")
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        "google/base-it"
    assert read_record(tmp_path / "adapter")["architecture"] == {
        "model_type": "gemma3_text", "vocab_size": 300, "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16}
    load_adapter(lora_model(), tmp_path / "adapter")  # the same architecture: loads
    for changes, named in [({"vocab_size": 301}, "vocab_size 300 (this model: 301)"),
                           ({"hidden_size": 32}, "hidden_size 64 (this model: 32)")]:
        with pytest.raises(ValueError) as error:
            load_adapter(lora_model(**changes), tmp_path / "adapter")
        assert str(error.value) == (f"{tmp_path / 'adapter'}: this adapter was trained on google/base-it, whose "
                                    f"{named} differ from the model it is being loaded on: load it on "
                                    "google/base-it (--model)")


@pytest.mark.parametrize("field, value, what", [
    ("r", "8", "a positive integer, e.g. 16"), ("r", 0, "a positive integer, e.g. 16"),
    ("r", True, "a positive integer, e.g. 16"),
    ("lora_alpha", "16", "a positive number, e.g. 32"), ("lora_dropout", 1.5, "a number in [0, 1), e.g. 0.05"),
    ("use_rslora", "no", "true or false"), ("target_modules", [1], 'a list of module names, e.g. ["q_proj", "v_proj"]'),
])
def test_adapter_config_fields_of_the_wrong_type_are_named(tmp_path, field, value, what):
    from minifc.adapters import load_adapter, save_adapter

    save_adapter(lora_model(), tmp_path / "adapter")
    path = tmp_path / "adapter" / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    with pytest.raises(ValueError) as error:
        load_adapter(lora_model(), tmp_path / "adapter")
    assert str(error.value) == f"{path}: field {field!r} must be {what}, got {json.dumps(value)}"


# --- a diverging run ---------------------------------------------------------------------------------------

def test_after_a_nan_stop_a_checkpoint_saved_while_the_loss_rose_is_named_suspect(tmp_path):
    for step in (2, 4, 6):
        (tmp_path / f"step-{step}").mkdir()
        (tmp_path / f"step-{step}" / "trainer_state.pt").write_bytes(b"x")
    losses = {1: 3.0, 2: 2.5, 3: 2.4, 4: 7.0, 5: 90.0, 6: 1e5}
    lines = "".join(json.dumps({"step": s, "loss": v}) + "\n" for s, v in losses.items())
    (tmp_path / "metrics.jsonl").write_text(lines + '{"step": 7, "lo')  # cut by a kill mid-write
    assert trainstate.last_good_checkpoint(tmp_path) == (
        f"{tmp_path / 'step-2'} (loss 2.5 at its step); newer but suspect, as the loss was rising: "
        f"{tmp_path / 'step-6'} (loss 1e+05 at its step, over twice the lowest before it, 2.4), "
        f"{tmp_path / 'step-4'} (loss 7 at its step, over twice the lowest before it, 2.4)")
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": v}) + "\n"
                                                    for s, v in {1: 1.0, 2: 9.0, 4: 9.5, 6: 9.9}.items()))
    assert trainstate.last_good_checkpoint(tmp_path).startswith(
        f"none kept; newer but suspect, as the loss was rising: {tmp_path / 'step-6'}")
    assert trainstate.last_good_checkpoint(tmp_path / "nothing") == "none (none saved yet)"


def test_weights_that_are_not_finite_are_never_saved(tmp_path):
    weight = torch.nn.Parameter(torch.tensor([1.0, float("inf")]))
    with pytest.raises(ValueError, match=r"^step 5: the trained weights hold inf or NaN, so they were not saved; "
                                         r"the checkpoints before it are kept\. Lower --lr"):
        trainstate.save_step(tmp_path, 5, (0, 5), torch.optim.SGD([weight], lr=0.1), lambda d: None, keep=3)
    assert list(tmp_path.iterdir()) == []


# --- how the commands end: exit codes, one line, MINIFC_DEBUG ------------------------------------------------

def raising(error):
    def main():
        raise error
    return main


@pytest.mark.parametrize("main, code, printed", [
    (lambda: None, None, ""),
    (raising(SystemExit("data: f.jsonl: no such file")), "data: f.jsonl: no such file", ""),
    (raising(ValueError("f.jsonl:3: bad")), "x.py: f.jsonl:3: bad", ""),
    (raising(FileNotFoundError(2, "No such file or directory", "out")),
     "x.py: [Errno 2] No such file or directory: 'out'", ""),
    (raising(KeyboardInterrupt()), cli.INTERRUPTED, "\nx.py: interrupted\n"),
    (raising(SystemExit(2)), 2, ""),  # argparse's usage errors
], ids=["ok", "message", "ValueError", "OSError", "Ctrl-C", "usage"])
def test_run_ends_every_command_the_same_way(main, code, printed, capsys, monkeypatch):
    monkeypatch.delenv("MINIFC_DEBUG", raising=False)
    if code is None:
        cli.run(main, "x.py")
    else:
        with pytest.raises(SystemExit) as stop:
            cli.run(main, "x.py")
        assert stop.value.code == code
    assert capsys.readouterr().err == printed


def test_minifc_debug_prints_the_traceback_of_a_one_line_error(capsys, monkeypatch):
    def main():
        try:
            {}["missing"]
        except KeyError:
            raise SystemExit("model: a clear message")
    monkeypatch.setenv("MINIFC_DEBUG", "1")
    with pytest.raises(SystemExit, match="^model: a clear message$"):
        cli.run(main, "x.py")
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "KeyError: 'missing'" in err
    assert "SystemExit: model: a clear message" in err
    with pytest.raises(SystemExit, match="^x.py: bad$"):
        cli.run(raising(ValueError("bad")), "x.py")
    assert "ValueError: bad" in capsys.readouterr().err


def test_the_commands_exit_with_the_documented_codes_and_no_traceback(tmp_path):
    """As a user runs them (cli.run's other paths are tested above, in process): exit code 1 and one line for
    bad input; with MINIFC_DEBUG=1 the same line after the traceback."""
    bad = command("train.py", "--model", "tiny", "--lr", "-1")
    assert (bad.returncode, bad.stderr) == (1, "--lr must be > 0, got -1.0\n")
    debug = command("eval.py", "--model", "tiny", "--data", tmp_path / "none.jsonl", env={"MINIFC_DEBUG": "1"})
    assert debug.returncode == 1 and debug.stderr.startswith("Traceback (most recent call last)")
    assert "minifc.schema.DataError: " in debug.stderr
    assert debug.stderr.splitlines()[-1].startswith(f"eval.py: {tmp_path / 'none.jsonl'}: no such file or directory")


# --- property-based: any JSON record ends as an Example, a ConversionError or a counted problem ----------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Random JSON, and records shaped like each layout with random JSON at any point: so that most records get
# past the first check of their converter and reach validation and rendering.
_WORDS = ["user", "assistant", "tool", "f", "g", "a", "<end_of_turn>", "<|eot_id|>", "x y", ""]
_SCALARS = (st.none() | st.booleans() | st.integers(-2, 2) | st.floats(allow_nan=False, allow_infinity=False, width=16)
            | st.sampled_from(_WORDS) | st.text(max_size=4))
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["a", "b", "name", "type", "properties"]) | st.text(max_size=3), inner, max_size=3), max_leaves=10)
def mostly(good):
    """`good` five times in six, else any JSON value."""
    return st.one_of(*[good] * 5, _JSON)


_NAMES = st.sampled_from(["f", "g"])
_PARAMS = st.sampled_from(["a", "b"])
_TYPES = st.sampled_from(["string", "integer", "number", "boolean", "array", "object", "null", "str"])
_SCHEMA = st.recursive(
    st.fixed_dictionaries({}, optional={"type": mostly(_TYPES | st.lists(_TYPES, max_size=2)),
                                        "enum": mostly(st.lists(_SCALARS, max_size=3)),
                                        "$ref": st.sampled_from(["#", "#/$defs/a", "#/definitions/a", "x.json"])}),
    lambda inner: st.fixed_dictionaries({"type": st.just("object")}, optional={
        "properties": mostly(st.dictionaries(_PARAMS, inner, max_size=2)),
        "required": mostly(st.lists(_PARAMS, max_size=2)), "items": mostly(inner),
        "anyOf": st.lists(inner, max_size=2), "oneOf": st.lists(inner, max_size=2), "allOf": st.lists(inner, max_size=2),
        "$defs": st.dictionaries(st.just("a"), inner, max_size=1), "additionalProperties": st.booleans() | inner}),
    max_leaves=6)
_ARGUMENTS = st.dictionaries(_PARAMS, _JSON, max_size=2) | _JSON
_BARE_TOOL = st.fixed_dictionaries({"name": _NAMES}, optional={"description": st.text(max_size=4), "parameters": _SCHEMA})
_TOOL = st.builds(lambda f: {"type": "function", "function": f}, _BARE_TOOL) | _BARE_TOOL | _JSON
_CALL = st.fixed_dictionaries({"name": mostly(_NAMES)}, optional={"arguments": _ARGUMENTS | _ARGUMENTS.map(json.dumps)})
_MESSAGE = st.fixed_dictionaries({"role": mostly(st.sampled_from(["user", "assistant", "tool", "system"]))}, optional={
    "content": _SCALARS | _JSON, "name": mostly(_NAMES), "train": mostly(st.booleans()),
    "tool_calls": st.lists(st.builds(lambda c: {"type": "function", "function": c}, _CALL) | _CALL | _JSON, max_size=2)})
_CANONICAL = st.fixed_dictionaries({"messages": st.lists(_MESSAGE, max_size=4) | _JSON},
                                   optional={"tools": st.lists(_TOOL, max_size=2) | _JSON, "category": _SCALARS | _JSON})
_TEXT = st.text(max_size=8) | st.sampled_from(_WORDS)
_CONVERSATION = st.builds(  # a well-formed call and answer, random values: gets past validation into rendering
    lambda schema, text, arguments, result, reply: {
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": schema}}],
        "messages": [{"role": "user", "content": text},
                     {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f",
                                                                                             "arguments": arguments}}]},
                     {"role": "tool", "content": result}, {"role": "assistant", "content": reply}]},
    st.just({"type": "object"}) | _SCHEMA, _TEXT, st.dictionaries(st.text(max_size=3) | _PARAMS, _JSON, max_size=3),
    _TEXT | st.dictionaries(st.text(max_size=3), _JSON, max_size=2), _TEXT.filter(str.strip))
_GLAIVE_TURN = st.sampled_from(["USER: ", "ASSISTANT: ", "FUNCTION RESPONSE: ", "ASSISTANT: <functioncall> "])
_GLAIVE = st.fixed_dictionaries({
    "system": st.lists(_BARE_TOOL.map(json.dumps) | st.text(max_size=3), max_size=2).map(
        lambda tools: "SYSTEM: Use them if required - " + " ".join(tools)) | _SCALARS,
    "chat": st.lists(st.tuples(_GLAIVE_TURN, _CALL.map(json.dumps) | st.text(max_size=6) | _CALL.map(
        lambda c: f'{{"name": "{c["name"]}", "arguments": \'{json.dumps(c.get("arguments"))}\'}}')), max_size=4).map(
        lambda turns: "\n".join(turn + text + " <|endoftext|>" for turn, text in turns)) | _SCALARS})
_TAGGED = st.tuples(st.sampled_from(["tools", "tool_call", "tool_response"]), _JSON | _CALL | _BARE_TOOL).map(
    lambda tag: f"<{tag[0]}>{json.dumps(tag[1]) if hash(str(tag[1])) % 2 else repr(tag[1])}</{tag[0]}>")
_HERMES = st.fixed_dictionaries({"conversations": st.lists(st.fixed_dictionaries({
    "from": mostly(st.sampled_from(["system", "human", "gpt", "tool"])), "value": mostly(_TAGGED | st.text(max_size=4))}),
    max_size=4) | _JSON}, optional={"tools": st.lists(_BARE_TOOL, max_size=2).map(json.dumps) | _JSON})
_XLAM_PARAMS = st.dictionaries(_PARAMS, st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["str", "int, optional", "List[str]", "Union[int, float]", "Any", "Dict[str, Any]"]) | _SCALARS,
    "default": _SCALARS, "description": st.text(max_size=3)}) | _SCALARS, max_size=2)
_XLAM = st.fixed_dictionaries({
    "query": _SCALARS, "tools": st.lists(st.fixed_dictionaries({"name": _NAMES}, optional={
        "parameters": _XLAM_PARAMS | _SCHEMA | _JSON}), max_size=2).map(json.dumps) | _JSON,
    "answers": st.lists(_CALL, max_size=2).map(json.dumps) | _JSON})
_SIMPLE = st.fixed_dictionaries({"user_content": _SCALARS, "tool_name": mostly(_NAMES),
                                 "tool_arguments": _ARGUMENTS.map(json.dumps) | _JSON},
                                optional={"tools": st.lists(_TOOL, max_size=2).map(json.dumps) | _JSON})
_LAYOUTS = {"canonical": _CANONICAL | _CONVERSATION, "glaive": _GLAIVE, "hermes": _HERMES, "xlam": _XLAM, "simple": _SIMPLE}


@settings(max_examples=300)
@given(layout=st.sampled_from(sorted(_LAYOUTS)).flatmap(lambda name: st.tuples(st.just(name), _LAYOUTS[name] | _JSON)))
def test_any_json_record_converts_validates_and_renders_or_is_a_clean_skip(layout):
    """Every converter, validation, and (for a valid example) every chat format: a result, a ConversionError
    (a counted skip), Problems (a counted skip) or a ValueError from rendering (counted by the encoder), never
    another exception."""
    from minifc.chat import FORMATS as CHAT_FORMATS, get_format
    from minifc.convert import FORMATS, ConversionError
    from minifc.schema import Problem, validate_example

    data_format, record = layout
    try:
        example = FORMATS[data_format](record, "f.jsonl:1")
    except ConversionError as error:
        assert error.field and error.message
        return
    problems = validate_example(example)
    assert all(isinstance(p, Problem) and p.reason and p.message for p in problems)
    if problems:
        return
    for fmt in map(get_format, CHAT_FORMATS):
        try:
            fmt.render(example.messages, tools=example.tools or None)
        except ValueError:
            pass


@pytest.mark.parametrize("call, message", [
    ("{[1]: 2}", "neither JSON nor a Python literal of JSON values (dicts, lists, strings, numbers, True, False, "
                 "None): '{[1]: 2}'"),
    ('{"name": "f", "arguments": {(1, 2): 3}}', "neither JSON nor a Python literal of JSON values"),
    ('{"name": "f", "arguments": {"s": {1, 2}}}', "neither JSON nor a Python literal of JSON values"),
    ("[" * 5000 + "]" * 5000, "neither JSON nor a Python literal of JSON values"),  # too deep for either parser
], ids=["unhashable key", "tuple key", "set", "deep"])
def test_hermes_calls_that_json_cannot_hold_are_a_conversion_error(call, message):
    """Found by the fuzz below, or named in issue 13: a TypeError, a RecursionError or a call whose arguments
    no chat format can write (llama's json.dumps fails on a tuple key)."""
    from minifc.convert import ConversionError, convert_hermes

    record = {"conversations": [{"from": "human", "value": "hi"},
                                {"from": "gpt", "value": f"<tool_call>{call}</tool_call>"}]}
    with pytest.raises(ConversionError) as error:
        convert_hermes(record, "h.jsonl:1")
    assert error.value.field == "conversations[1].value <tool_call>" and message in error.value.message


@pytest.mark.parametrize("record, message", [
    ({"conversations": [{"from": {"a": 1}, "value": "x"}]}, 'conversations[0]: must be {"from": ..., "value": "..."}'),
    ({"query": "q", "tools": '[{"name": "f", "parameters": [1]}]', "answers": "[]"},
     'tools: parameters of \'f\' must be an object {name: {"type": ..., "description": ...}}, got [1]'),
    ({"query": "q", "tools": '[{"name": "f", "parameters": "city"}]', "answers": "[]"}, "got city"),
])
def test_converter_records_of_the_wrong_shape_are_a_conversion_error(record, message):
    from minifc.convert import FORMATS, ConversionError, detect_format

    with pytest.raises(ConversionError) as error:
        FORMATS[detect_format(record, "r:1")](record, "r:1")
    assert message in str(error.value)


def test_arguments_deeper_than_a_recursive_schema_can_follow_are_a_counted_skip(tmp_path):
    value = {}
    for _ in range(700):
        value = {"a": value}
    record = {"tools": [{"type": "function", "function": {"name": "f", "parameters": {
                  "type": "object", "properties": {"a": {"$ref": "#"}}}}}],
              "messages": [{"role": "user", "content": "hi"},
                           {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f",
                                                                                                   "arguments": value}}]}]}
    ok = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(record) + "\n" + json.dumps(ok) + "\n")
    from minifc.data import load_examples

    examples, report = load_examples(path)
    assert len(examples) == 1 and report.skipped == {"too_deep": 1}
    assert f"{path}:1: record: nested too deeply to check; flatten it" in report.summary()
