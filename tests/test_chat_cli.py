"""chat.py on a tiny random model: the one-shot output is the streamed reply (the stop token left out)
followed by what the format's parse() reads, exactly as generate() and parse() give them; the session
loop sends typed tool results back to the model; bad --tools is a one-line error."""

import io
import json
from types import SimpleNamespace

import pytest

import chat
from minifc import tiny
from minifc.chat import get_format
from minifc.generate import generate
from minifc.loader import load

SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, head_dim=16, max_position_embeddings=512)
TOOLS = [{"name": "get_weather", "description": "Weather of a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    fmt = get_format("gemma3")
    texts = [fmt.render([{"role": "user", "content": "Weather in Oslo?"}, {"role": "assistant", "content": "Cold."}],
                        [{"type": "function", "function": TOOLS[0]}]).text] * 4
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiny, "SIZES", SMALL)
        return tiny.save_tiny(tmp_path_factory.mktemp("chat") / "model", tiny.train_tokenizer(texts, fmt, 300), fmt)


def test_prompt_prints_the_streamed_reply_and_its_parse(model_dir, tmp_path, capsys):
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(TOOLS))
    chat.main(["--model", str(model_dir), "--tools", str(tools), "--prompt", "Weather in Oslo?",
               "--max-new-tokens", "12"])
    out = capsys.readouterr().out

    model, tokenizer, fmt = load(str(model_dir))
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    prompt = tokenizer.encode(fmt.render(messages, [{"type": "function", "function": TOOLS[0]}],
                                         add_generation_prompt=True).text)
    [gen] = generate(model.eval(), tokenizer, [prompt], tokenizer.stop_ids(fmt), 12)
    shown = tokenizer.decode([i for i in gen.ids if i not in tokenizer.stop_ids(fmt)])
    parsed = fmt.parse(gen.text)
    expected = "assistant> " + shown + "\n"
    expected += "" if gen.stop_reason == "stop" else "(stopped after --max-new-tokens 12)\n"
    expected += f"parse error: {parsed['parse_error']}\n" if parsed["parse_error"] else ""
    expected += "".join(f"tool call: {c['function']['name']}({json.dumps(c['function']['arguments'])})\n"
                        for c in parsed["tool_calls"])
    assert out == expected


def test_session_sends_typed_results_back(model_dir, monkeypatch):
    """The loop alone: the model's replies are scripted (a call, then an answer); the second prompt must
    carry the call and the typed result."""
    _, tokenizer, fmt = load(str(model_dir), weights=False)
    call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    replies = iter([{"role": "assistant", "content": None, "tool_calls": [call]},
                    {"role": "assistant", "content": "3 degrees.", "tool_calls": []}])
    seen = []
    monkeypatch.setattr(chat, "reply", lambda model, tok, fmt, messages, *rest: seen.append(list(messages))
                        or next(replies))
    typed = iter(["Weather in Oslo?", '{"temperature": 3}', ""])
    args = SimpleNamespace(system=None)
    chat.session(None, tokenizer, fmt, [], args, ask=lambda prompt: next(typed), out=io.StringIO())
    assert seen[1][-2:] == [{"role": "assistant", "content": None, "tool_calls": [call]},
                            {"role": "tool", "name": "get_weather", "content": {"temperature": 3}}]
    assert "```tool_output\n{\"temperature\": 3}\n```" in fmt.render(seen[1], add_generation_prompt=True).text


def test_tool_result_is_json_or_text():
    assert chat.tool_result("f", '{"a": 1}') == {"role": "tool", "name": "f", "content": {"a": 1}}
    assert chat.tool_result("f", "sunny") == {"role": "tool", "name": "f", "content": "sunny"}


def test_bad_tools_file_is_one_line(tmp_path, model_dir):
    bad = tmp_path / "tools.json"
    bad.write_text('{"name": "f"}')
    with pytest.raises(SystemExit) as error:
        chat.main(["--model", str(model_dir), "--tools", str(bad), "--prompt", "hi"])
    assert str(error.value) == (f"chat.py: --tools {bad}: expected a JSON list of tools, each "
                                "{\"type\": \"function\", \"function\": {\"name\", \"description\", "
                                "\"parameters\"}} or the bare function")
    bad.write_text("[1,")
    with pytest.raises(SystemExit) as error:
        chat.main(["--model", str(model_dir), "--tools", str(bad), "--prompt", "hi"])
    assert str(error.value).startswith(f"chat.py: --tools {bad}: line 1: invalid JSON:")


def test_printer_waits_for_whole_characters(model_dir):
    _, tokenizer, _ = load(str(model_dir), weights=False)
    ids = tokenizer.encode("é")  # byte-level BPE: may be two byte tokens
    out = io.StringIO()
    printer = chat.Printer(tokenizer, [], out)
    for token in ids:
        printer([token])
    assert out.getvalue() == "é"
