"""The official chat templates rendered the way Hugging Face `apply_chat_template` renders them.

Test-only oracle (jinja2 is never imported by minifc/). Configuration as in FORMATS.md section 0:
a sandboxed environment with trim_blocks, lstrip_blocks and loop controls, a `tojson` filter equal to
`json.dumps(..., ensure_ascii=False)` with its indent argument, and the globals `raise_exception` and
`strftime_now`.
"""

import json
from datetime import datetime
from pathlib import Path

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateError(Exception):
    """raise_exception() was called by the template."""


def _raise_exception(message):
    raise TemplateError(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _environment(now: datetime | None = None) -> jinja2.Environment:
    now = now or datetime.now()
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: now.strftime(fmt)
    return env


def load_template(path, now: datetime | None = None) -> jinja2.Template:
    return _environment(now).from_string(Path(path).read_text(encoding="utf-8"))


def render_template(path, messages, tools=None, add_generation_prompt=False, bos_token="", now=None, **extra) -> str:
    """Render the official template at `path`; raises TemplateError where the template refuses.
    `now` fixes what strftime_now() returns (Llama 3.2's default date), for deterministic renders."""
    return load_template(path, now).render(messages=messages, tools=tools, add_generation_prompt=add_generation_prompt,
                                      bos_token=bos_token, **extra)
