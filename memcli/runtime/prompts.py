"""The chat-format prompts for answering with memory and for writing to it.

Training data (`recipes/`) is built with these same functions, so that an adapter sees at
inference exactly the text it was trained on.
"""

from __future__ import annotations

import re

from memcli.protocol import ReadQuery, Triple, format_read, format_write, neutralize

ANSWER_SYSTEM = (
    "You are a helpful assistant with an explicit memory of facts. When you need a fact, "
    "read it from memory with ({MEM_READ(subject>>relation>>)-->, and the system appends "
    "the results and }). Answer from the results. If memory has nothing, say you do not "
    "know."
)

WRITE_SYSTEM = (
    "You extract facts from text into memory. After the sentence, write every fact it "
    "states as ({MEM_WRITE-->subject>>relation>>object;...}) using words from the sentence "
    "and known relation names. Write ({MEM_WRITE-->}) when it states none."
)

# One worked example each, shown to the base model (no adapter) as earlier turns.
ANSWER_SHOTS: list[dict[str, str]] = [
    {"role": "user", "content": "Which record label is Rihanna signed to?"},
    {
        "role": "assistant",
        "content": format_read([ReadQuery("Rihanna", "record label", None)], ["Def Jam"])
        + " Rihanna is signed to Def Jam.",
    },
]

WRITE_SHOTS: list[dict[str, str]] = [
    {
        "role": "user",
        "content": "Context: \nSentence: Lake Geneva lies between Switzerland and France.",
    },
    {
        "role": "assistant",
        "content": format_write(
            [
                Triple("Lake Geneva", "country", "Switzerland"),
                Triple("Lake Geneva", "country", "France"),
            ]
        ),
    },
]

# The write context is the preceding text cut to whole sentences within this many
# characters: what the adapter was trained with (recipes/, --max-context 300), and it
# keeps every write prompt short (ingest speed depends on it).
MAX_CONTEXT_CHARS = 300
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]?\s+")


def trim_context(context: str, max_chars: int = MAX_CONTEXT_CHARS) -> str:
    """The last whole sentences of `context` that fit in `max_chars`."""
    context = context.strip()
    if len(context) <= max_chars:
        return context
    tail = context[-max_chars - 1 :]
    first = _SENTENCE_END.search(tail)
    return tail[first.end() :] if first else ""


def answer_messages(
    history: list[dict[str, str]], *, few_shot: bool = True, memory: bool = True
) -> list[dict[str, str]]:
    """System prompt, (examples), then the conversation so far. What the person wrote
    reaches the model neutralised (`protocol.neutralize`): no memory call in it."""
    history = [_neutral(message) for message in history]
    if not memory:
        return [{"role": "system", "content": "You are a helpful assistant."}, *history]
    shots = ANSWER_SHOTS if few_shot else []
    return [{"role": "system", "content": ANSWER_SYSTEM}, *shots, *history]


def _neutral(message: dict[str, str]) -> dict[str, str]:
    if message.get("role") != "user":
        return message  # the model's own turns keep the calls it wrote
    return {**message, "content": neutralize(message.get("content", ""))}


def write_user_message(sentence: str, context: str = "") -> str:
    """The text to write facts from, neutralised (`protocol.neutralize`): a memory call
    in a file or a chat message is not a fact to store."""
    sentence, context = neutralize(sentence), neutralize(context)
    context = trim_context(context)
    return f"Context: {context}\nSentence: {sentence}"


def write_messages(sentence: str, context: str = "", *, few_shot: bool = True) -> list[dict]:
    shots = WRITE_SHOTS if few_shot else []
    return [
        {"role": "system", "content": WRITE_SYSTEM},
        *shots,
        {"role": "user", "content": write_user_message(sentence, context)},
    ]
