"""Examples -> token ids and labels: the renders to train on, one tokenization each; and the mask inspector.

    sequences = encode_sequences(example, tokenizer, fmt, train_on=DEFAULT)  # [(ids, labels), ...]
    ids, labels = encode_example(example, tokenizer, fmt, train_on=DEFAULT)  # when there is one sequence
        # example: an Example or a dict {"messages": [...], "tools": [...]}
        # renders with fmt.render(messages, tools=tools or None), tokenizes each render once with offsets
        # (no automatic BOS: the format writes it) and labels each token from the trained spans that
        # minifc/masking.py gives for `train_on` (default: what the assistant says and its end token):
        # labels[i] == ids[i] where token i is trained on, else -100 (HF convention, aligned with ids).

Train what serving shows. Serving produces assistant turn i as the text the template adds between
render(messages[:i], add_generation_prompt=True) and render(messages[:i+1]); that text, in that context,
is what turn i is trained on. A render R shows turn i as served when render(messages[:i+1]) is a prefix of
R. Most templates are prefix-preserving, and the whole conversation is then one sequence. Qwen3's and
Gemma 4's templates drop the reasoning of turns before the last user message (Qwen3 also drops the empty
think block of every turn that is not the last), so the full render does not show those turns as
served: the example becomes several sequences (`served_renders`), the full render first, then renders of
prefixes, each training only the turns it shows as served, every trained turn trained exactly once. The
prefixes are taken greedily from the latest turn not yet shown, which gives the fewest sequences for
templates that drop earlier reasoning. A turn trains only what follows its generation prompt (a prompt
that ends with an empty think block or a thought opener leaves those untrained: serving wrote them).
Messages other than assistant turns (`--train-on tool`, say) are trained in the full render only. An
example with reasoning is rendered with the format's thinking switch on (`enable_thinking=True`, where
the format has one), as it would be served.

Reasoning a format has no place for (llama3.x, gemma3, functiongemma) is not rendered: those turns train
without it; encode_dataset counts them, and with strict=True refuses the example.

The labelling rule: a token is trained when all of its characters lie inside one trained span of the
rendered text (spans that touch count as one). A token whose characters are partly inside and partly
outside a span cannot be labelled honestly (the model would learn half a token), so it raises
`SpanAlignmentError`; well-formed spans start and end at control tokens or at piece boundaries and
never produce one. A token with no characters (an empty offset range) is not trained.

A dataset:

    encoded, report = encode_dataset(examples, tokenizer, fmt, max_len=2048, truncate=False, train_on=DEFAULT)
        # encoded: list of (ids, labels), one per sequence. Sequences longer than max_len are dropped and
        # counted (without tokenizing those whose characters prove it: more than max_len *
        # tokenizer.max_token_chars); with truncate=True they are cut at the end of the last trained span
        # that fits (the end of an assistant turn, never inside a trained span) and kept only if something
        # trained remains.
        # Examples with nothing trained, or that the format cannot render (ValueError), are dropped
        # and counted too. `print(report)` gives the counts by reason and the first locations.

The inspector (`python inspect_masks.py`, or `inspect_example` here) prints each sequence of an example
with the trained tokens highlighted, its tokens counted by the role of the message they came from, and
whether every trained assistant turn ends with a trained stop token.
"""

import bisect
import inspect
from collections import Counter
from dataclasses import dataclass, field

from minifc.masking import DEFAULT, END, IGNORE_INDEX, REASONING, TrainOn, message_trained
from minifc.schema import DataError


class SpanAlignmentError(ValueError):
    """A token straddles the edge of a trained span: the renderer's spans and the tokenizer disagree."""


def _example_fields(example) -> tuple[list[dict], list[dict], str]:
    """(messages, tools, location) of an Example or of a dict with "messages" and optional "tools"."""
    if isinstance(example, dict):
        if "messages" not in example:
            raise ValueError(f"example {example.get('location', '')}: a dict example needs a 'messages' list")
        return example["messages"], example.get("tools") or [], example.get("location", "")
    return example.messages, example.tools or [], getattr(example, "location", "")


def render_example(example, fmt, **format_options):
    """The example rendered by the chat format (a kit.Rendered: text and labelled pieces)."""
    messages, tools, _ = _example_fields(example)
    return fmt.render(messages, tools=tools or None, **format_options)


def label_tokens(ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]],
                 text: str = "", location: str = "") -> list[int]:
    """labels[i] = ids[i] when token i's characters all lie inside one span, else -100 (module doc)."""
    spans = _merge_touching(spans)
    labels = [IGNORE_INDEX] * len(ids)
    span_index = 0
    for i, (start, end) in enumerate(offsets):
        if start >= end:
            continue  # a token with no characters is in no span
        while span_index < len(spans) and spans[span_index][1] <= start:
            span_index += 1  # spans that end before this token can no longer contain anything
        if span_index == len(spans):
            break
        span_start, span_end = spans[span_index]
        if span_start <= start and end <= span_end:
            labels[i] = ids[i]
        elif start < span_end and end > span_start:
            raise SpanAlignmentError(
                f"{location or 'example'}: token {i} {text[start:end]!r} (characters {start}-{end}) straddles "
                f"the edge of trained span {span_start}-{span_end} {text[span_start:span_end][:60]!r}; the "
                "chat format's spans must start and end where tokens do (at a control token or a piece "
                "boundary): fix the renderer's spans, or use the tokenizer the format was written for")
    return labels


def _merge_touching(spans) -> list[tuple[int, int]]:
    """Sorted spans with touching or overlapping ones merged: a token across (a, b) + (b, c) is inside."""
    merged = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif start < end:
            merged.append((start, end))
    return merged


def served_renders(example, fmt, train_on: TrainOn = DEFAULT, **format_options) -> list[tuple]:
    """[(Rendered, {message index: first character it may train}), ...]: the renders an example trains on
    (module doc, "Train what serving shows"), the full render first; an assistant turn trains only what
    follows its generation prompt. Raises ValueError when the format cannot render the example."""
    messages, tools, _ = _example_fields(example)
    if any(m.get("reasoning") for m in messages) and "enable_thinking" in inspect.signature(fmt.render).parameters:
        format_options.setdefault("enable_thinking", True)  # reasoning is served with thinking on

    def render(count, prompt=False):
        return fmt.render(messages[:count], tools=tools or None, add_generation_prompt=prompt, **format_options)

    full = render(len(messages))
    trained = {i for i in range(len(messages)) if message_trained(messages, i, train_on)}
    turns = sorted(i for i in trained if messages[i].get("role") == "assistant")
    served = {i: full if i == len(messages) - 1 else render(i + 1) for i in turns}
    starts = {i: 0 for i in trained}
    for i in turns:
        prompt = render(i, prompt=True).text
        if not served[i].text.startswith(prompt):
            raise ValueError(f"messages[{i}]: {fmt.name}'s generation prompt ends {prompt[-40:]!r}, which is not how "
                             "its render of the turn begins, so the served turn is undefined")
        starts[i] = len(prompt)
    left, renders, candidate = set(turns), [], full
    while True:
        shown = {i for i in left if candidate.text.startswith(served[i].text)}
        if candidate is full:  # the full render also trains what is not an assistant turn (--train-on tool)
            shown |= trained - set(turns)
        if shown or not renders:
            renders.append((candidate, {i: starts[i] for i in sorted(shown)}))
        left -= shown
        if not left:
            return renders
        candidate = served[max(left)]


def served_spans(rendered, train_on: TrainOn, starts: dict[int, int]) -> list[tuple[int, int]]:
    """The trained spans of the messages in `starts`, each from its first trainable character on."""
    return [(max(a, start), b) for index, start in starts.items()
            for a, b in rendered.trained_spans(train_on, {index}) if b > start]


def _encode_rendered(rendered, tokenizer, location: str = "", train_on: TrainOn = DEFAULT, starts=None):
    """(ids, labels) of a Rendered: tokenized once (no BOS added), labelled from its trained spans
    (of the messages in `starts` only, when given)."""
    ids, offsets = tokenizer.encode_with_offsets(rendered.text)
    spans = rendered.trained_spans(train_on) if starts is None else served_spans(rendered, train_on, starts)
    return list(ids), label_tokens(ids, offsets, spans, rendered.text, location)


def encode_sequences(example, tokenizer, fmt, train_on: TrainOn = DEFAULT, **format_options):
    """[(input_ids, labels), ...] of one example, one per served render (module doc).
    format_options go to fmt.render (say, Llama's date_string)."""
    location = _example_fields(example)[2]
    return [_encode_rendered(rendered, tokenizer, location, train_on, starts)
            for rendered, starts in served_renders(example, fmt, train_on, **format_options)]


def encode_example(example, tokenizer, fmt, train_on: TrainOn = DEFAULT, **format_options):
    """(input_ids, labels) of an example that is one sequence (always, with a prefix-preserving format);
    raises ValueError when the format splits it (use encode_sequences)."""
    sequences = encode_sequences(example, tokenizer, fmt, train_on, **format_options)
    if len(sequences) != 1:
        raise ValueError(f"{fmt.name} trains this example as {len(sequences)} sequences: use encode_sequences")
    return sequences[0]


def _unrendered_reasoning(messages, renders) -> int:
    """How many trained messages carry reasoning that the render training them does not show (the format
    has no place for it; untrained context turns may lose theirs, as the template drops them)."""
    return sum(1 for rendered, starts in renders for i in starts if messages[i].get("reasoning") and not any(
        piece.message == i and piece.kind == REASONING for piece in rendered.pieces))


def _truncate_at_turn_end(ids: list[int], labels: list[int], max_len: int):
    """Cut after the last trained run that ends within max_len tokens, or None if no trained run fits.

    A trained run ends with the token that ends an assistant turn, so the cut lands on a turn
    boundary and never inside a trained span."""
    ends = [i + 1 for i in range(min(max_len, len(ids)))
            if labels[i] != IGNORE_INDEX and (i + 1 == len(ids) or labels[i + 1] == IGNORE_INDEX)]
    return (ids[:ends[-1]], labels[:ends[-1]]) if ends else None


@dataclass
class EncodeReport:
    """What encode_dataset kept, dropped (by reason) and truncated, with the first locations of each.
    Drops and truncations count sequences (an example the format does not split is one sequence)."""
    kept: int = 0                 # examples with at least one sequence kept
    sequences: int = 0            # sequences kept
    extra_tokens: int = 0         # tokens of the sequences after each example's first
    unrendered_reasoning: int = 0  # assistant turns whose reasoning the format has no place for
    truncated: int = 0
    dropped: Counter = field(default_factory=Counter)
    first_locations: dict[str, list[str]] = field(default_factory=dict)
    num_tokens: int = 0
    num_trained: int = 0

    def note(self, reason: str, location: str, keep: int = 5):
        locations = self.first_locations.setdefault(reason, [])
        if len(locations) < keep:
            locations.append(location or "?")

    def drop(self, reason: str, location: str):
        self.dropped[reason] += 1
        self.note(reason, location)

    def __str__(self) -> str:
        lines = [f"encoded {self.kept} examples ({self.num_tokens} tokens, {self.num_trained} trained); "
                 f"truncated {self.truncated}; dropped {sum(self.dropped.values())}"]
        if self.sequences > self.kept:
            lines.append(f"  {self.sequences - self.kept} extra sequences ({self.extra_tokens} tokens) for turns the "
                         f"full render does not show as served: first at {', '.join(self.first_locations['split'])}")
        if self.unrendered_reasoning:
            lines.append(f"  {self.unrendered_reasoning} assistant turns carry reasoning this format has no place "
                         f"for: trained without it (first at {', '.join(self.first_locations['reasoning'])})")
        if self.truncated:
            lines.append(f"  truncated at a turn boundary: first at {', '.join(self.first_locations['truncated'])}")
        for reason, count in sorted(self.dropped.items()):
            lines.append(f"  dropped {count} ({reason}): first at {'; '.join(self.first_locations[reason])}")
        return "\n".join(lines)


def encode_dataset(examples, tokenizer, fmt, max_len: int | None = None, truncate: bool = False,
                   train_on: TrainOn = DEFAULT, strict: bool = False, **format_options):
    """Encode every example; returns (list of (ids, labels), EncodeReport). Nothing is dropped uncounted.
    strict=True raises DataError on reasoning the format cannot show, instead of training without it."""
    encoded, report = [], EncodeReport()
    for n, example in enumerate(examples):
        location = _example_fields(example)[2] or f"example {n}"
        try:
            renders = served_renders(example, fmt, train_on, **format_options)
        except ValueError as error:  # the format cannot express this conversation (Gemma's strict turns, say)
            report.drop("cannot render", f"{location}: {error}")
            continue
        except RecursionError:
            report.drop("cannot render", f"{location}: a value is nested too deeply to render")
            continue
        if unrendered := _unrendered_reasoning(_example_fields(example)[0], renders):
            if strict:
                raise DataError(f"{location}: an assistant message has reasoning, which the {fmt.name} format has "
                                "no place for; drop the reasoning or use a format that shows it (qwen3, gemma4)")
            report.unrendered_reasoning += unrendered
            report.note("reasoning", location)
        if len(renders) > 1:
            report.note("split", f"{location} ({len(renders)} sequences)")
        kept = 0
        for k, (rendered, starts) in enumerate(renders):
            where = location if len(renders) == 1 else f"{location} (sequence {k + 1} of {len(renders)})"
            if max_len is not None and not truncate and len(rendered.text) > max_len * tokenizer.max_token_chars:
                # too long, told by its characters alone: a huge record is never tokenized (memory)
                report.drop(f"longer than max_len={max_len}", f"{where} ({len(rendered.text)} characters)")
                continue
            ids, labels = _encode_rendered(rendered, tokenizer, where, train_on, starts)
            if max_len is not None and len(ids) > max_len:
                cut = _truncate_at_turn_end(ids, labels, max_len) if truncate else None
                if cut is None:
                    reason = f"longer than max_len={max_len}" + (" with no trained turn within it" if truncate else "")
                    report.drop(reason, f"{where} ({len(ids)} tokens)")
                    continue
                ids, labels = cut
                report.truncated += 1
                report.note("truncated", where)
            num_trained = sum(label != IGNORE_INDEX for label in labels[1:])  # the first token has no context
            if num_trained == 0:
                report.drop("nothing trained", where)
                continue
            encoded.append((ids, labels))
            report.extra_tokens += len(ids) if kept else 0
            kept += 1
            report.num_tokens += len(ids)
            report.num_trained += num_trained
        report.kept += kept > 0
        report.sequences += kept
    return encoded, report


# ---------------------------------------------------------------------------------------------------
# The mask inspector


def _highlight(text: str, offsets, labels, colour: bool) -> str:
    """The text with the trained tokens' characters marked: green on a terminal, ⟦...⟧ otherwise."""
    on, off = ("\033[42;30m", "\033[0m") if colour else ("⟦", "⟧")
    pieces, cursor, i = [], 0, 0
    while i < len(labels):
        if labels[i] == IGNORE_INDEX:
            i += 1
            continue
        j = i
        while j + 1 < len(labels) and labels[j + 1] != IGNORE_INDEX:
            j += 1
        start, end = offsets[i][0], offsets[j][1]
        pieces += [text[cursor:start], on, text[start:end], off]
        cursor, i = end, j + 1
    pieces.append(text[cursor:])
    return "".join(pieces)


def inspect_example(example, tokenizer, fmt, colour: bool = False, train_on: TrainOn = DEFAULT) -> str:
    """A report on one example, per sequence it trains as (module doc): the text with trained tokens
    highlighted, trained/untrained tokens by the role of the message they came from (the template's own
    text: "(format)"), the BOS count, and whether every trained assistant turn has its end token (one of
    the format's stop tokens) trained in some sequence."""
    messages, tools, location = _example_fields(example)
    renders = served_renders(example, fmt, train_on)
    stop_ids = set(tokenizer.stop_ids(fmt))
    ended, lines = set(), []  # assistant messages whose END piece holds a trained stop token
    for k, (rendered, starts) in enumerate(renders):
        ids, labels = _encode_rendered(rendered, tokenizer, location, train_on, starts)
        offsets = tokenizer.encode_with_offsets(rendered.text)[1]
        starts = [piece.start for piece in rendered.pieces]
        counts: dict[str, Counter] = {}
        for token, (start, _) in enumerate(offsets):
            piece = rendered.pieces[max(0, bisect.bisect_right(starts, start) - 1)]  # the piece the token starts in
            role = "(format)" if piece.message is None else messages[piece.message]["role"]
            trained = labels[token] != IGNORE_INDEX
            counts.setdefault(role, Counter())["trained" if trained else "untrained"] += 1
            if trained and piece.kind == END and ids[token] in stop_ids:
                ended.add(piece.message)
        sequence = "" if len(renders) == 1 else f" sequence {k + 1} of {len(renders)} (a served prefix),"
        lines += [f"--- {location or 'example'}:{sequence} {len(ids)} tokens, "
                  f"{sum(label != IGNORE_INDEX for label in labels)} trained",
                  _highlight(rendered.text, offsets, labels, colour), "",
                  f"{'tokens by role':<20}{'trained':>8}{'untrained':>11}"]
        lines += [f"  {role:<18}{c['trained']:>8}{c['untrained']:>11}" for role, c in counts.items()]
        bos = "none (the format writes none)" if tokenizer.bos_id is None else \
            f"{sum(i == tokenizer.bos_id for i in ids)} (should be 1)"
        lines.append(f"BOS tokens: {bos}")
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant" and message_trained(messages, i, train_on)]
    done = len(ended.intersection(turns))
    lines.append(f"every assistant turn's end token trained: {'yes' if done == len(turns) else 'NO'} ({done}/"
                 f"{len(turns)} turns have a trained stop token {sorted(stop_ids)})")
    if unrendered := _unrendered_reasoning(messages, renders):
        lines.append(f"reasoning not shown: {unrendered} assistant turns carry reasoning {fmt.name} has no place for")
    return "\n".join(lines)
