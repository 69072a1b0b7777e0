"""What is trained: the one rule that decides, for every piece of a rendered conversation.

Renderers (minifc/chat/) never decide what is trained. They write each piece of text with a label
saying what it is and which message it came from (`chat.kit.SpanWriter`); this module turns the labels
into the trained character spans. Changing what is trained means changing this file (or passing
another `TrainOn`), never a renderer.

Kinds of piece:

    TEMPLATE   text the template adds on its own: BOS, instructions, tool declarations, separators
    HEADER     the role header that opens a message's turn (`<start_of_turn>model\\n`)
    TEXT       a message's own text: its content, a tool result's body
    REASONING  an assistant message's reasoning trace
    CALLS      an assistant message's tool calls
    END        the token that ends the message's turn (for the assistant: the stop token it must learn)

The rule:

1. TEMPLATE and HEADER are never trained (the prompt supplies them at inference).
2. A message's own `"train": true | false` wins: false trains nothing of it; true trains its TEXT,
   REASONING and CALLS, and its END only for an assistant message (an overridden user, system or
   tool message trains its own text, as the data asked, not the token that ends its turn).
3. Otherwise a message is trained when its role is in `TrainOn.roles` (default: assistant only;
   "developer" counts as system, "ipython" as tool) and, with `last_turn_only`, an assistant
   message only when it is the conversation's last assistant message (the others become context).
   A trained message trains its TEXT, REASONING, CALLS and END.
4. With `TrainOn.reasoning` false (`--no-train-reasoning`), REASONING is never trained: the trace stays
   as context the model reads, and the model learns only what follows it.

Which render trains which assistant turn (a template that drops earlier reasoning shows a turn as served
only in a render of a prefix) is decided by minifc/encode.py, which passes `only`: the messages a render
may train.
"""

from dataclasses import dataclass

IGNORE_INDEX = -100  # the label (and target) of a token that is not trained: PyTorch's cross-entropy default

TEMPLATE, HEADER, TEXT, REASONING, CALLS, END = "template", "header", "text", "reasoning", "calls", "end"
ROLES = ("assistant", "tool", "user", "system")
ROLE_ALIASES = {"developer": "system", "ipython": "tool"}


@dataclass(frozen=True)
class TrainOn:
    """Which messages are trained when they carry no "train" flag of their own (see the module doc)."""
    roles: tuple[str, ...] = ("assistant",)
    last_turn_only: bool = False
    reasoning: bool = True              # rule 4: False leaves reasoning traces untrained

    def __post_init__(self):
        unknown = [role for role in self.roles if role not in ROLES]
        if unknown or not self.roles:
            raise ValueError(f"train on {', '.join(unknown) or 'nothing'}: give a comma list of {', '.join(ROLES)}")

    @classmethod
    def parse(cls, roles: str, last_turn_only: bool = False, reasoning: bool = True) -> "TrainOn":
        """`--train-on assistant,tool` -> TrainOn(("assistant", "tool"))."""
        roles = tuple(dict.fromkeys(role.strip() for role in roles.split(",") if role.strip()))
        return cls(roles, last_turn_only, reasoning)


DEFAULT = TrainOn()


def _role(message) -> str | None:
    role = message.get("role") if isinstance(message, dict) else None
    return ROLE_ALIASES.get(role, role) if isinstance(role, str) else None


def message_trained(messages: list[dict], index: int, train_on: TrainOn = DEFAULT) -> bool:
    """Whether the text of messages[index] is trained (rules 2 and 3)."""
    message = messages[index]
    if message.get("train") is not None:
        return message["train"] is True
    role = _role(message)
    if role not in train_on.roles:
        return False
    if train_on.last_turn_only and role == "assistant":
        return index == max(i for i, m in enumerate(messages) if _role(m) == "assistant")
    return True


def piece_trained(kind: str, messages: list[dict], index: int | None, train_on: TrainOn = DEFAULT) -> bool:
    """Whether a piece of this kind, written for messages[index], is trained (the whole rule)."""
    if kind in (TEMPLATE, HEADER) or index is None or not message_trained(messages, index, train_on):
        return False
    if kind == REASONING and not train_on.reasoning:
        return False
    if kind == END and messages[index].get("train") is True:
        return _role(messages[index]) == "assistant"
    return True


def trains_anything(messages: list[dict], train_on: TrainOn = DEFAULT) -> bool:
    """Whether any message of the conversation is trained (data validation's "nothing to train")."""
    return any(isinstance(m, dict) and message_trained(messages, i, train_on) for i, m in enumerate(messages))


def trained_spans(pieces, messages: list[dict], train_on: TrainOn = DEFAULT,
                  only: set[int] | None = None) -> list[tuple[int, int]]:
    """The trained character ranges [start, end) of a render, touching ranges merged into one.

    pieces: (start, end, kind, message index, also) as chat.kit.Piece; `also` is None or a second
    (kind, message index) label of the same text, trained if either label is. `only`: the indices of
    the messages this render may train (None: all)."""
    def trained(kind, index):
        return (only is None or index in only) and piece_trained(kind, messages, index, train_on)

    spans: list[tuple[int, int]] = []
    for start, end, kind, index, also in pieces:
        trained_here = trained(kind, index) or (also is not None and trained(*also))
        if not trained_here or start == end:
            continue
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans
