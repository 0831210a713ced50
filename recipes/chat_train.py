"""Conversational write examples for the memory adapter, from the `train` split of
`recipes/chat_data.py`: the write calls `memcli chat` makes, rendered exactly as the
runtime renders them, with the fact the person told as the target.

For each stated sentence the runtime (`memcli.repl.conversation`) resolves pronouns and
first person (`writing.plan_turn`), then makes one write call on the resolved sentence,
with the conversation so far (the person's turns and memcli's replies) as context, cut
as `prompts.trim_context` cuts it. The target is the told fact: subject and object as the
resolved sentence spells them, and the relation the wording means. That is what the
shipped adapter gets wrong in chat (it writes `country of citizenship` for "lives in",
reverses "works at", writes nothing for many wordings). Denials, hypotheticals, greetings
and questions make no write call, so they give no example; a statement whose fact is
not in the sentence (a resolution the runtime gets wrong) is left out rather than taught.

Names, wordings and relations of the train split only: the dev and test splits, which
`memcli eval chat` measures, share nothing with it but the relation names.

    python -m recipes.chat_train --count 400 --show 3
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from typing import Any

from memcli import protocol
from memcli.protocol import Triple
from memcli.runtime import prompts, writing
from memcli.runtime.reading import NOTHING_IN_MEMORY
from memcli.store import names
from recipes import chat_data
from recipes.data import IM_END, Example, render_chat

DEFAULT_COUNT = 400  # conversations (+ 100 + 100 special ones): 1,418 write examples

# Sentences about someone that state no fact memory keeps (no relation holds between the
# person and the place or company named): the write call they get must be empty. Without
# them every conversational example has a fact, and a model trained on them writes for
# sentences of documents that state none (241 of 555 Re-DocRED sentences with no
# labelled fact, write precision 0.12). Train split only; {s} is the person or a pronoun.
CHATTER = [
    "{s} spent a lovely weekend in {c}.",
    "{s} visited {c} last summer.",
    "{s} thinks {c} is far too rainy.",
    "{s} flew to {c} for a conference.",
    "{s} had lunch with a client from {o}.",
    "{s} read a long article about {o}.",
    "{s} applied for a job at {o}.",
    "{s} watched a documentary about {c}.",
    "{s} sent a parcel to {c} on Monday.",
    "{s} is learning to play the piano.",
    "{s} bought a new bicycle.",
    "{s} loves hiking in the mountains.",
    "{s} has a cat called Miso.",
    "{s} was tired after a long day.",
    "{s} baked bread for the whole street.",
    "{s} took the night train through {c}.",
    "{s} got a parking ticket outside {o}.",
    "{s} finally finished a marathon.",
]


def _spelled_in(sentence: str, name: str) -> bool:
    """Whether `name` is a whole-word span of `sentence`, by matching key."""
    key, text = names.key(name), f" {names.key(sentence)} "
    return any(f" {key}{end}" in text for end in (" ", ".", ",", "'", "’", "!", ";"))


def conversation_examples(conversation: dict[str, Any], index: int) -> Iterator[Example]:
    """The write examples of one conversation, turn by turn, as the runtime would make
    its write calls."""
    context = writing.Context()
    said: list[str] = []
    current: dict[tuple[str, str], str] = {}
    for turn in conversation["turns"]:
        message = turn["user"]
        plan = writing.plan_turn(message, context)
        told = [Triple(*fact) for fact in turn.get("facts") or []]
        stored: list[tuple[str, str, str]] = []
        replaced: dict[int, str] = {}
        for sentence in plan.statements:
            gold = [
                t
                for t in told
                if _spelled_in(sentence.resolved, t.subject)
                and _spelled_in(sentence.resolved, t.object)
            ]
            if told and not gold:
                continue  # the runtime's resolution misses it: nothing true to teach
            messages = prompts.write_messages(
                sentence.resolved, prompts.trim_context(" ".join(said)), few_shot=False
            )
            call = protocol.format_write(gold)
            head = protocol.WRITE_HEAD
            yield Example(
                "chat-write",
                index,
                [(render_chat(messages) + head, False), (call[len(head) :] + IM_END, True)],
            )
            for t in gold:
                old = current.get((names.key(t.subject), t.relation))
                if old is not None and turn.get("superseded"):
                    replaced[len(stored)] = old
                stored.append((t.subject, t.relation, t.object))
                current[(names.key(t.subject), t.relation)] = t.object
        for _subject, _relation, obj in stored:  # "it" in the next turn, as the runtime
            context.saw_thing(obj)
        said.append(message)  # memcli's reply follows in the context, as in the runtime
        if plan.introductions:  # "My name is …": the runtime's greeting, as it says it
            said.append(f"Nice to meet you, {plan.introductions[-1].resolved}.")
        if stored or plan.statements:
            said.append(writing.acknowledge(stored, replaced, []))
        elif "answer" in turn:
            answer = turn["answer"]
            said.append(" and ".join(answer) + "." if answer else NOTHING_IN_MEMORY)


def with_chatter(conversation: dict[str, Any], rng: random.Random, rate: float) -> dict:
    """`conversation` with, at a rate of `rate` a conversation (a rate of 1.5: one, and
    half of the time two), sentences of CHATTER about its person told after the first
    fact (by name or by pronoun), stating nothing to keep."""
    turns = list(conversation["turns"])
    told = [t for t in turns if t.get("facts")]
    if not told or conversation["id"].count("-") != 1:
        return conversation  # "train-me-…", "train-chair-…": no one person to talk about
    person = told[0]["facts"][0][0]
    first = person.split()[0]
    count = int(rate) + (rng.random() < rate - int(rate))
    for _ in range(count):
        things = chat_data._Names("train", rng)
        text = rng.choice(CHATTER).format(
            s=chat_data._pronoun(first) if rng.random() < 0.4 else person,
            c=things.thing("city"),
            o=things.thing("company"),
        )
        at = rng.randint(1, len(turns))
        turns.insert(at, {"user": text, "facts": [], "category": "chatter"})
    return {**conversation, "turns": turns}


def chat_examples(count: int = DEFAULT_COUNT, seed: int = 0, chatter: float = 0.0) -> list[Example]:
    """The write examples of `count` train conversations (deterministic for a seed), with
    `chatter` sentences of CHATTER a conversation (see `with_chatter`)."""
    out: list[Example] = []
    rng = random.Random(f"train-{seed}-chatter")
    for index, conversation in enumerate(chat_data.conversations("train", count, seed)):
        if chatter:
            conversation = with_chatter(conversation, rng, chatter)
        out += conversation_examples(conversation, 100_000 + index)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a summary of the chat examples.")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--chatter", type=float, default=0.0, help="fact-less sentences a conversation"
    )
    parser.add_argument("--show", type=int, default=0, help="print the first N examples")
    args = parser.parse_args(argv)
    examples = chat_examples(args.count, args.seed, args.chatter)
    empty = sum(1 for e in examples if e.target.startswith(protocol.CLOSE))
    print(
        f"{len(examples)} write examples ({empty} empty) from {args.count} conversations; "
        f"{sum(len(e.text) for e in examples)} characters",
        file=sys.stdout,
    )
    for e in examples[: args.show]:
        print(repr(e.segments))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
