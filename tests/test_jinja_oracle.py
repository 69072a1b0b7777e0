"""The oracle itself reproduces every rendered case of the reference examples (their strftime_now is
fixed to 2025-11-22)."""

import json
from datetime import datetime

import pytest

from jinja_oracle import TemplateError, render_template


def test_oracle_reproduces_reference_examples(reference):
    data = json.loads((reference / "examples" / "rendered_examples.json").read_text(encoding="utf-8"))
    cases = data["cases"] if "cases" in data else data
    checked = 0
    for case in cases:
        inputs = case["inputs"]
        render = lambda: render_template(reference / case["template"], inputs["messages"], tools=inputs["tools"],
                                         add_generation_prompt=inputs["add_generation_prompt"],
                                         bos_token=inputs["bos_token"], now=datetime(2025, 11, 22), **(inputs.get("extra") or {}))
        if case["error"]:
            with pytest.raises(TemplateError):
                render()
        else:
            assert render() == case["output"], case["name"]
        checked += 1
    assert checked >= 40
