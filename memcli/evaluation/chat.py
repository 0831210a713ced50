"""`memcli eval chat FILE`: conversations in everyday language, told through the same
turn code as `memcli chat` (`memcli.repl.conversation.Conversation.run_turn`), each in a
fresh memory.

The file has one conversation per line (JSON lines; `recipes/chat_data.py` generates
them, `recipes/data/chat_dev.jsonl` is the development set):

    {"id": "dev-000", "turns": [
      {"user": "Dana Whitfield lives in Oslo.", "facts": [["Dana Whitfield", "residence", "Oslo"]]},
      {"user": "Hello, how are you?", "chat": true},
      {"user": "Where does Dana live?", "answer": ["Oslo"]},
      {"user": "Where was Dana Whitfield born?", "answer": null},
      {"user": "Dana does not live in Paris.", "facts": []},
      {"user": "Dana Whitfield moved to Bergen.",
       "facts": [["Dana Whitfield", "residence", "Bergen"]],
       "superseded": [["Dana Whitfield", "residence", "Oslo"]]},
      {"user": "Where does Dana live now?", "answer": ["Bergen"], "stale": ["Oslo"]}
    ]}

Keys of a turn (all but `user` optional; `category` labels it for the split tables):

- `facts`: the triples the message states. Each must be in memory (current) after the
  turn: *captured*. `[]` says it states none: anything stored is *spurious*.
- `superseded`: triples that must no longer be current after the turn (counted only
  when they were current before it).
- `answer`: the turn asks something. A list: the reply must name one of these (case and
  spaces aside) and not abstain: *answered* (with `stale`, *updates followed* instead,
  where it must also name none of the `stale` values). `null`: the fact was never told,
  and the reply must abstain ("I don't know", "nothing about that in memory"):
  *abstained*.
- `chat`: true for a message that needs no memory (a greeting, a request): the reply must
  not abstain (*non-memory "I don't know"* counts those that do; lower is better).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memcli.errors import UsageError
from memcli.store import names

ABSTAIN = re.compile(
    r"\b(?:i\s+(?:do\s+not|don'?t|don’t)\s+know|(?:have|has)\s+nothing\s+about|"
    r"nothing\s+(?:about\s+(?:that|this|it)\s+)?in\s+(?:my\s+)?memory|no\s+information|"
    r"not\s+in\s+(?:my\s+)?memory|i\s+(?:am\s+not|'m\s+not)\s+sure)\b",
    re.IGNORECASE,
)

MEASURES = (
    "captured",
    "answered",
    "updates followed",
    "abstained",
    "superseded",
    "spurious writes",
    "non-memory IDK",
)


def abstains(reply: str) -> bool:
    return bool(ABSTAIN.search(reply))


def _norm(text: str) -> str:
    key = names.key(text)
    return key[4:] if key.startswith("the ") else key


def mentions(reply: str, value: str) -> bool:
    """Whether `reply` names `value` (case, spaces and a leading "the" aside)."""
    words = " ".join(re.findall(r"[\w-]+", reply.lower()))
    return f" {_norm(value)} " in f" {words} "


@dataclass
class Counter:
    good: int = 0
    total: int = 0

    def add(self, ok: bool) -> None:
        self.good += ok
        self.total += 1

    @property
    def rate(self) -> float | None:
        return self.good / self.total if self.total else None


@dataclass
class TurnResult:
    conversation: str
    number: int
    user: str
    reply: str
    category: str
    stored: list[tuple[str, str, str]]
    checks: dict[str, list[bool]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "conversation": self.conversation,
            "turn": self.number,
            "user": self.user,
            "reply": self.reply,
            "category": self.category,
            "stored": [list(t) for t in self.stored],
            "checks": self.checks,
        }


@dataclass
class ChatReport:
    conversations: int = 0
    turns: list[TurnResult] = field(default_factory=list)
    measures: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    by_category: dict[str, dict[str, Counter]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Counter))
    )

    def count(self, measure: str, category: str, ok: bool) -> None:
        self.measures[measure].add(ok)
        self.by_category[category][measure].add(ok)

    def rate(self, measure: str) -> float | None:
        return self.measures[measure].rate if measure in self.measures else None

    def summary(self) -> list[tuple[str, str]]:
        rows = [("conversations", str(self.conversations)), ("turns", str(len(self.turns)))]
        for measure in MEASURES:
            c = self.measures.get(measure)
            if c is not None and c.total:
                rows.append((measure, f"{c.rate:.3f} ({c.good}/{c.total})"))
        for category in sorted(self.by_category):
            parts = [
                f"{m} {c.good}/{c.total}"
                for m in MEASURES
                if (c := self.by_category[category].get(m)) is not None and c.total
            ]
            rows.append((f"  {category}", ", ".join(parts)))
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "conversations": self.conversations,
            "measures": {
                m: {"rate": c.rate, "good": c.good, "total": c.total}
                for m, c in self.measures.items()
            },
            "by_category": {
                cat: {m: {"rate": c.rate, "good": c.good, "total": c.total} for m, c in ms.items()}
                for cat, ms in self.by_category.items()
            },
            "turns": [t.as_dict() for t in self.turns],
        }


def load_conversations(path: Path) -> list[dict[str, Any]]:
    """Read and check a conversations file; a bad line is a `UsageError` naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    found = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: not JSON: {exc.msg}") from exc
        turns = item.get("turns") if isinstance(item, dict) else None
        if not isinstance(turns, list) or not turns:
            raise UsageError(f'{where}: a conversation needs a non-empty "turns" list')
        for t_number, turn in enumerate(turns, 1):
            _check_turn(turn, f"{where}: turn {t_number}")
        found.append({"id": str(item.get("id", f"line-{number}")), "turns": turns})
    if not found:
        raise UsageError(f"{path}: no conversations")
    return found


def _check_turn(turn: Any, where: str) -> None:
    if not isinstance(turn, dict) or not isinstance(turn.get("user"), str) or not turn["user"]:
        raise UsageError(f'{where}: a turn needs a non-empty "user" string')
    for key in ("facts", "superseded"):
        value = turn.get(key, [])
        if not isinstance(value, list) or not all(
            isinstance(t, list) and len(t) == 3 and all(isinstance(x, str) for x in t)
            for t in value
        ):
            raise UsageError(f'{where}: "{key}" must be a list of [subject, relation, object]')
    answer = turn.get("answer", [])
    if answer is not None and not (
        isinstance(answer, list) and all(isinstance(a, str) for a in answer)
    ):
        raise UsageError(f'{where}: "answer" must be a list of strings or null')
    if "answer" in turn and answer is not None and not answer:
        raise UsageError(f'{where}: "answer" must name at least one value (null: abstain)')


def _key(triple: Iterable[str]) -> tuple[str, ...]:
    return tuple(_norm(x) for x in triple)


def evaluate_chat(
    make_conversation: Callable[[Any], Any],
    conversations: list[dict[str, Any]],
    view: Any,
    *,
    progress: Callable[[int], None] | None = None,
) -> ChatReport:
    """Run each conversation in a fresh temporary memory. `make_conversation(store)`
    returns the REPL's `Conversation` on that store (the CLI makes it, with a `view` that
    renders into nothing: evaluation does not import the REPL)."""
    from memcli.store.core import TripleStore

    report = ChatReport()
    for index, item in enumerate(conversations):
        with tempfile.TemporaryDirectory(prefix="memcli-chat-eval-") as folder:
            store = TripleStore(Path(folder) / "memory.db")
            try:
                conversation = make_conversation(store)
                for number, turn in enumerate(item["turns"], 1):
                    _score_turn(report, item["id"], number, turn, conversation, view, store)
            finally:
                store.close()
        report.conversations += 1
        if progress is not None:
            progress(index + 1)
    return report


def _score_turn(
    report: ChatReport,
    cid: str,
    number: int,
    turn: dict[str, Any],
    conversation: Any,
    view: Any,
    store: Any,
) -> None:
    before = {t.id for t in store.find()}
    held = {_key((t.subject, t.relation, t.object)) for t in store.find()}
    record = conversation.run_turn(turn["user"], view)
    reply = record.answer
    current = store.find()
    stored = [(t.subject, t.relation, t.object) for t in current if t.id not in before]
    current_keys = {_key((t.subject, t.relation, t.object)) for t in current}
    category = turn.get("category") or _category(turn)
    result = TurnResult(cid, number, turn["user"], reply, category, stored)

    def check(measure: str, ok: bool) -> None:
        report.count(measure, category, ok)
        result.checks.setdefault(measure, []).append(ok)

    if "facts" in turn:
        if turn["facts"]:
            for fact in turn["facts"]:
                check("captured", _key(fact) in current_keys)
        else:
            check("spurious writes", bool(stored))
    for fact in turn.get("superseded", []):
        if _key(fact) in held:  # only a fact that was in memory can be superseded
            check("superseded", _key(fact) not in current_keys)
    if "answer" in turn:
        answer = turn["answer"]
        if answer is None:
            check("abstained", abstains(reply))
        else:
            named = any(mentions(reply, a) for a in answer) and not abstains(reply)
            stale = turn.get("stale") or []
            if stale:
                check("updates followed", named and not any(mentions(reply, s) for s in stale))
            else:
                check("answered", named)
    if turn.get("chat"):
        check("non-memory IDK", abstains(reply))
    report.turns.append(result)


def _category(turn: dict[str, Any]) -> str:
    if turn.get("chat"):
        return "chat"
    if "answer" in turn:
        return "absent" if turn["answer"] is None else "question"
    return "statement"
