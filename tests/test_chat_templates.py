"""Serving-ready exports: the chat_template.jinja of a merged export and of an adapter directory renders,
through transformers' AutoTokenizer.apply_chat_template (the oracle), exactly the text minifc trains on,
for every chat format and every built-in example (whole conversations, and prompts with the generation
prompt, tools, calls and tool results included).

A format whose template is "official" gets it from the base model's directory; here the base is a tiny
model whose directory holds the official template from the reference files (skipped without them)."""

import json
import shutil

import pytest
import torch

from minifc import tiny
from minifc.chat import FORMATS, get_format
from minifc.chat.lookup import TEMPLATE_FILE, chat_template
from minifc.config import ModelConfig
from minifc.data import BUILTIN_TEST, BUILTIN_TRAIN, load_examples
from minifc.export import save_hf_model
from minifc.lora import apply_lora
from minifc.model import Transformer
from minifc.trainstate import weights_writer

SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, head_dim=16, max_position_embeddings=512)
# formats whose template is "official": the reference file that is the base model's own template
OFFICIAL = {"functiongemma": "functiongemma-270m-it.jinja"}
NAMES = sorted({get_format(name).name for name in FORMATS})


@pytest.fixture(scope="module")
def examples():
    return load_examples(BUILTIN_TRAIN)[0] + load_examples(BUILTIN_TEST)[0]


def export_dirs(name, tmp_path, reference_dir, monkeypatch):
    """(base directory, merged export, adapter directory) of a tiny LoRA model in format `name`."""
    monkeypatch.setattr(tiny, "SIZES", SMALL)
    fmt = get_format(name)
    # trained on the format's text, so that the tokenizer has the format's BOS (tiny.bos_token): an official
    # template writes {{ bos_token }}
    text = fmt.render([{"role": "user", "content": "What's the weather in Paris?"}]).text
    tokenizer = tiny.train_tokenizer([text] * 4, fmt, vocab_size=300)
    hf_config = tiny.tiny_hf_config(tiny.family_of(fmt), tokenizer.vocab_size, tokenizer)
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_hf(hf_config))
    base = save_hf_model(model, tmp_path / "base", hf_config, tokenizer, fmt)
    if fmt.template == "official":
        if name not in OFFICIAL:
            pytest.skip(f"no reference template listed for the official format {name!r} (add it to OFFICIAL)")
        if reference_dir is None:
            pytest.skip("reference material not found: the official template of the base model is needed")
        shutil.copyfile(reference_dir / "templates" / OFFICIAL[name], base / TEMPLATE_FILE)
    apply_lora(model, r=2, alpha=4, targets=("all",))
    merged = save_hf_model(model, tmp_path / "merged", hf_config, tokenizer, fmt, tokenizer_dir=base)
    adapter = tmp_path / "adapter"
    weights_writer(model, False, str(base), hf_config, tokenizer, fmt, tokenizer_dir=base)(adapter)
    return base, merged, adapter


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_exported_template_renders_what_minifc_trains_on(name, examples, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from conftest import find_reference
    base, merged, adapter = export_dirs(name, tmp_path, find_reference(), monkeypatch)
    fmt = get_format(name)
    template = (merged / TEMPLATE_FILE).read_text(encoding="utf-8")
    assert (adapter / TEMPLATE_FILE).read_text(encoding="utf-8") == template
    assert "chat_template" not in json.loads((merged / "tokenizer_config.json").read_text())
    from_merged = AutoTokenizer.from_pretrained(merged)
    from_base = AutoTokenizer.from_pretrained(base)  # an adapter is served with its base's tokenizer
    adapter_template = (adapter / TEMPLATE_FILE).read_text(encoding="utf-8")
    for example in examples:
        prompt = example.messages[:-1]
        cases = [(example.messages, False), (prompt, True)]
        for messages, generation_prompt in cases:
            expected = fmt.render(messages, tools=example.tools or None, add_generation_prompt=generation_prompt).text
            got = from_merged.apply_chat_template(messages, tools=example.tools or None, tokenize=False,
                                                  add_generation_prompt=generation_prompt)
            assert got == expected, f"{example.location}, add_generation_prompt={generation_prompt}"
        got = from_base.apply_chat_template(prompt, tools=example.tools or None, tokenize=False,
                                            add_generation_prompt=True, chat_template=adapter_template)
        assert got == fmt.render(prompt, tools=example.tools or None, add_generation_prompt=True).text, \
            f"{example.location}: adapter"


def test_every_format_declares_its_template():
    for name in NAMES:
        template = get_format(name).template
        assert template == "official" or chat_template(get_format(name)) is not None, name


def test_official_template_comes_from_the_base(tmp_path):
    fmt = get_format("functiongemma")
    assert chat_template(fmt, tmp_path) is None  # the base has none: the export writes none
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ 'A' }}"}))
    assert chat_template(fmt, tmp_path) == "{{ 'A' }}"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": [
        {"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}))
    assert chat_template(fmt, tmp_path) == "D"
    (tmp_path / TEMPLATE_FILE).write_text("F")
    assert chat_template(fmt, tmp_path) == "F"


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city — now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {
    "city": "Zürich \"old\" town\n", "days": 3, "ratio": 0.1, "exact": True, "none": None,
    "nested": {"a": [1, False]}}}}
EDGE_CASES = [  # what the built-in data lacks: a system message, text before calls, string results, odd values
    ([{"role": "system", "content": "  Be brief.  "}, {"role": "user", "content": " Hi "},
      {"role": "assistant", "content": "Hello."}], None),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": "Let me look.", "tool_calls": [CALL, CALL]},
      {"role": "tool", "name": "get_weather", "content": " 21 C "}, {"role": "tool", "content": {"t": 21}},
      {"role": "user", "content": "And tomorrow?"}, {"role": "user", "content": "Thanks."},
      {"role": "assistant", "content": "Sunny."}], [WEATHER]),
    ([{"role": "user", "content": "Weather?"}, {"role": "assistant", "tool_calls": [CALL]},
      {"role": "tool", "content": [1, 2]}, {"role": "tool", "content": 7}], [WEATHER]),
]


@pytest.mark.parametrize("name", [name for name in NAMES if get_format(name).template != "official"])
def test_minifc_templates_on_edge_cases(name, tmp_path, monkeypatch):
    from transformers import AutoTokenizer
    _, merged, _ = export_dirs(name, tmp_path, None, monkeypatch)
    tokenizer, fmt = AutoTokenizer.from_pretrained(merged), get_format(name)
    compared = 0
    for messages, tools in EDGE_CASES:
        for cut, generation_prompt in ((len(messages), False), (len(messages) - 1, True)):
            try:
                expected = fmt.render(messages[:cut], tools=tools, add_generation_prompt=generation_prompt).text
            except ValueError:  # a conversation this format refuses (Gemma 4: a tool result [1, 2], ...)
                continue
            got = tokenizer.apply_chat_template(messages[:cut], tools=tools, tokenize=False,
                                                add_generation_prompt=generation_prompt)
            assert got == expected
            compared += 1
    assert compared == (4 if name.startswith("gemma4") else 6)  # Gemma 4 refuses a list of non-text parts
    if name.startswith("llama"):  # the format's options pass through apply_chat_template too
        messages, tools = EDGE_CASES[1]
        for options in ({"date_string": "01 Jan 2025"}, {"tools_in_user_message": False}):
            assert tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, **options) == \
                fmt.render(messages, tools=tools, **options).text


def _call(name, arguments, id=None):
    return {"type": "function", "function": {"name": name, "arguments": arguments}, **({"id": id} if id else {})}


TIME = {"type": "function", "function": {"name": "get_time", "description": "Local time.", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}}, "required": ["zone"]}}}
ASK = [{"role": "user", "content": "Weather and time in Oslo?"}]
PARALLEL = {"role": "assistant", "tool_calls": [_call("get_weather", {"city": "Oslo"}),
                                                _call("get_time", {"zone": "CET"})]}
QWEN_CASES = [  # (messages, tools, options)
    # reasoning after the last query (also as reasoning_content), dropped before it; parallel calls
    (ASK + [{**PARALLEL, "reasoning": "\nTwo lookups.\n"}, {"role": "tool", "content": "4 C"},
            {"role": "tool", "content": {"time": "09:00"}},
            {"role": "assistant", "content": "\n4 C at 09:00.", "reasoning_content": "Both came back."}],
     [WEATHER, TIME], {}),
    (ASK + [{"role": "assistant", "content": "Hi.", "reasoning": "dropped"}, {"role": "user", "content": "Oslo?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [_call("get_weather", '{"city": "Oslo"}')]},
            {"role": "tool", "content": ""}, {"role": "tool", "content": [True, None, 0.5]}],
     [WEATHER], {}),
    (ASK, [WEATHER, TIME], {"enable_thinking": False}),
    (ASK + [{"role": "assistant", "content": "Sure."}], None, {"enable_thinking": True}),
    ([{"role": "system", "content": ""}] + ASK, [WEATHER], {}),
    ([{"role": "system", "content": "Be terse."}] + ASK, None, {}),
]
GEMMA4_CASES = [
    # ids answered out of order; results named by id, by name, and in call order; a number, None, text parts
    (ASK + [{**PARALLEL, "tool_calls": [_call("get_weather", {"city": "Oslo"}, "a"),
                                        _call("get_time", {"zone": "CET"}, "b")]},
            {"role": "tool", "tool_call_id": "b", "content": "09:00"},
            {"role": "tool", "tool_call_id": "a", "content": {"temp": 4.0, "sky": ["snow", None]}},
            {"role": "assistant", "content": " 4 C at 09:00. "}], [WEATHER, TIME], {}),
    (ASK + [PARALLEL, {"role": "tool", "name": "get_time", "content": 9}, {"role": "tool", "content": None},
            {"role": "assistant", "content": [{"type": "text", "text": " Done. "}]}], [WEATHER, TIME], {}),
    (ASK + [PARALLEL, {"role": "tool", "content": [{"type": "text", "text": " a "}, {"type": "text", "text": "b"}]},
            {"role": "tool", "content": True}], [WEATHER, TIME], {"enable_thinking": True}),
    # reasoning: shown after the last user message, dropped before it unless preserve_thinking keeps it on calls
    (ASK + [{**PARALLEL, "reasoning": "Two lookups."}, {"role": "tool", "content": "4 C"},
            {"role": "tool", "content": "09:00"}, {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": "Welcome.", "reasoning_content": "Polite."}],
     [WEATHER, TIME], {"enable_thinking": True}),
    (ASK + [{**PARALLEL, "reasoning": "Two lookups."}, {"role": "tool", "content": "4 C"},
            {"role": "tool", "content": "09:00"}, {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": "Welcome."}], [WEATHER, TIME], {"preserve_thinking": True}),
    # text before calls; an assistant message continuing the model turn; a developer message; no tools
    ([{"role": "developer", "content": [{"type": "text", "text": " Be terse. "}]}] + ASK
     + [{"role": "assistant", "content": "Let me look."}, {"role": "assistant", "content": "Looking.",
                                                           "tool_calls": [_call("get_weather", {})]}], None, {}),
    (ASK + [{"role": "assistant", "content": "Hi."}], None, {"enable_thinking": False}),
]
DECLARATIONS = [{"type": "function", "function": {  # what Gemma 4's declaration syntax has to say
    "name": "book", "description": "Book a room.",
    "parameters": {"type": "object", "required": ["guests"], "properties": {
        "guests": {"type": "array", "description": "Who.", "items": {"type": "object", "required": ["name"],
                   "properties": {"name": {"type": "string"}}, "title": None}},
        "tags": {"type": "array", "items": {"type": ["string", "null"], "enum": ["a", "b"]}},
        "kind": {"type": "integer", "enum": [1, 2], "nullable": True},
        "options": {"type": "object", "additionalProperties": {"type": "boolean"}, "description": "Extras."},
        "Where": {"type": "object", "properties": {"city": {"type": "string", "description": "City."}},
                  "required": ["city"]}}},
    "response": {"type": "object", "description": "The booking."}}},
    {"type": "function", "function": {"name": "ping"}}]
NO_THINKING = [(messages, tools, {}) for messages, tools, _ in QWEN_CASES]  # no enable_thinking to pass
FORMAT_CASES = {"qwen3": QWEN_CASES, "qwen3-2507": NO_THINKING, "qwen2.5": NO_THINKING,
                "gemma4": GEMMA4_CASES + [(ASK, DECLARATIONS, {})],
                "gemma4-31b": GEMMA4_CASES + [(ASK, DECLARATIONS, {"enable_thinking": True})]}


@pytest.mark.parametrize("name", sorted(FORMAT_CASES))
def test_qwen_and_gemma4_templates_on_their_own_edge_cases(name, tmp_path, monkeypatch):
    """Reasoning, parallel calls, string and object results, thinking on and off: every prefix of each case,
    as a conversation and (where it does not end with the model) as a prompt."""
    from transformers import AutoTokenizer
    _, merged, _ = export_dirs(name, tmp_path, None, monkeypatch)
    tokenizer, fmt = AutoTokenizer.from_pretrained(merged), get_format(name)
    compared = refused = 0
    for messages, tools, options in FORMAT_CASES[name]:
        for cut in range(1, len(messages) + 1):
            for generation_prompt in (False, True) if messages[cut - 1]["role"] != "assistant" else (False,):
                kwargs = dict(tools=tools, add_generation_prompt=generation_prompt, **options)
                try:
                    expected = fmt.render(messages[:cut], **kwargs).text
                except ValueError:  # qwen2.5 refuses string arguments; its template raises too
                    refused += 1
                    with pytest.raises(Exception, match="arguments must be an object"):
                        tokenizer.apply_chat_template(messages[:cut], tokenize=False, **kwargs)
                    continue
                got = tokenizer.apply_chat_template(messages[:cut], tokenize=False, **kwargs)
                assert got == expected, f"case {messages[-1]}, cut {cut}, {kwargs}"
                compared += 1
    assert (compared, refused) == {"qwen2.5": (26, 5), "gemma4": (54, 0), "gemma4-31b": (54, 0)}.get(name, (31, 0))


def test_gemma4_templates_differ_in_the_31b_prompt_only():
    """gemma4-31b.jinja is gemma4.jinja with `large` set (its first comment aside): one rule, two files."""
    small, large = (chat_template(get_format(name)).split("-#}", 1)[1] for name in ("gemma4", "gemma4-31b"))
    assert large == small.replace("{%- set large = false -%}", "{%- set large = true -%}") != small
