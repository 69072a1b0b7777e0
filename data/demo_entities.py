"""Invented entities for the offline demo's training data (`python data/generate.py --demo`).

A model trained from nothing copies an argument from the request into the call only if memorising the
values does not already work. With the built-in training split's 30 cities it can learn those 30 words,
and a held-out city is then a word it never wrote: it picks the tool and never gets an argument right.
Here about half of the values are invented (random letters, training words recombined), so that the only
way to write them is to copy them from the request. Nothing held out is ever drawn: no held-out entity, and no
invented word that is a word of one (the held-out split stays unseen, as in the built-in data).
"""

import string

from builtin_catalog import ENTITIES, Draw, split_entities

KEPT = {"phrase", "food"}  # phrases have fixed translations; foods are never arguments
CAPITALISED = {"city", "name"}
SINGLE_WORD = {"city", "name", "room", "word"}  # the other kinds are titles and sentences


def held_out_words() -> set[str]:
    return {word.lower() for items in split_entities("test").values() for item in items for word in item.split()}


class DemoDraw(Draw):
    """Draw with, at probability `invented`, an invented value in place of a listed one."""

    def __init__(self, rng, entities, invented=0.5):
        super().__init__(rng, entities)
        self.invented, self.forbidden = invented, held_out_words()
        self.vocabulary = sorted({w for kind, items in entities.items() if kind not in KEPT
                                  for item in items for w in item.split() if w.isalpha()})

    def __getattr__(self, kind):
        if kind in ENTITIES and kind not in KEPT and self.rng.random() < self.invented:
            return self.invent(kind)
        return super().__getattr__(kind)

    def two(self, kind):  # two different values, each drawn as above
        first = getattr(self, kind)
        while (second := getattr(self, kind)) == first:
            pass
        return [first, second]

    def invented_word(self, low=3, high=8) -> str:
        """Random letters: a word the demo's tokenizer spells in characters (minifc/tiny.py), as it spells
        the held-out words, so that copying it is practice for copying them."""
        while True:
            word = "".join(self.rng.choice(string.ascii_lowercase) for _ in range(self.rng.randint(low, high)))
            if word not in self.forbidden:
                return word

    def invent(self, kind) -> str:
        if kind == "symbol":
            return "".join(self.rng.choice(string.ascii_uppercase) for _ in range(self.rng.randint(2, 5)))
        if kind in SINGLE_WORD:
            word = self.invented_word(3, 9)
            return word.capitalize() if kind in CAPITALISED else word
        # A listed value of this kind with about half of its words replaced: the shape of a title or a
        # sentence of that kind, words that must be copied.
        words = self.rng.choice(self.e[kind]).split()
        for i, old in enumerate(words):
            if old.isalpha() and self.chance(0.5):
                new = self.invented_word() if self.chance(0.5) else self.pick(self.vocabulary)
                words[i] = new.capitalize() if old[0].isupper() else new.lower()
        return " ".join(words)


ECHO_ASKS = ["Repeat after me: {v}", "Say back exactly: {v}", "Echo this: {v}", "Copy this text: {v}",
             'Write "{v}" back to me.', "Please repeat {v}"]


def echo(d):
    """A copying drill: the assistant writes back a string of invented and listed words, numbers, dates and
    addresses. Short (no tools), and every trained token of the reply but the last is a copy."""
    parts = [d.pick([d.invented_word(), d.invent("city"), d.invent("symbol"), d.pick(d.vocabulary), d.date(),
                     d.time(), str(d.rng.randint(1, 99999)), d.email(d.invent("name"))])
             for _ in range(d.rng.randint(1, 6))]
    value = " ".join(parts)
    return [{"role": "user", "content": d.pick(ECHO_ASKS).format(v=value)}, {"role": "assistant", "content": value}]
