"""Reading alone, without the model: each conversation of a `memcli eval chat` file in a
fresh memory holding exactly the facts it tells (updates superseding what they replace),
each question planned as `memcli chat` plans it (`writing.plan_turn`: pronouns and
first names resolved) and the fact `reading.choose_facts` picks checked against the
expected answer, or against abstention when none is expected. Seconds for a file, so
the reading thresholds (`reading.MARGIN`, `MIN_BEST`, `glosses.ALIASES`) are chosen
with it on the train split (`python -m recipes.chat_data --split train`).

    python -m recipes.read_check recipes/data/chat_dev.jsonl --misses
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memcli.runtime import reading, writing
from memcli.store import names
from memcli.store.core import TripleStore


@dataclass
class Tally:
    answered: int = 0
    questions: int = 0
    abstained: int = 0
    absent: int = 0
    misses: list[str] = field(default_factory=list)


def _tell(store: TripleStore, turn: dict[str, Any]) -> None:
    """Store a turn's facts; an update supersedes the value it names as stale."""
    stale = {(names.key(s), names.key(r)): o for s, r, o in turn.get("superseded") or []}
    for subject, relation, obj in turn.get("facts") or []:
        old = stale.get((names.key(subject), names.key(relation)))
        replaced = [f for f in store.current_objects(subject, relation) if f.object == old]
        if replaced:
            store.supersede(replaced[0].id, object=obj)
        else:
            store.add(subject, relation, obj)


def check(conversations: Iterable[dict[str, Any]]) -> Tally:
    tally = Tally()
    for conversation in conversations:
        folder = tempfile.TemporaryDirectory(prefix="memcli-read-check-")
        store = TripleStore(Path(folder.name) / "memory.db")
        context = writing.Context()
        try:
            for turn in conversation["turns"]:
                plan = writing.plan_turn(turn["user"], context)
                _tell(store, turn)
                for _subject, _relation, obj in turn.get("facts") or []:
                    context.saw_thing(obj)
                if "answer" not in turn:
                    continue
                expected = turn["answer"]
                question = plan.questions[0].resolved if plan.questions else turn["user"]
                entities = reading.mentioned_entities(store, question)
                chosen = reading.choose_facts(store, question, entities) if entities else []
                got = {names.key(c.result) for c in chosen}
                if expected is None:
                    tally.absent += 1
                    tally.abstained += not chosen
                    ok = not chosen
                else:
                    tally.questions += 1
                    ok = bool(got) and {names.key(a) for a in expected} <= got
                    tally.answered += ok
                if not ok:
                    read = [f"{c.fact.relation}={c.result} ({c.score:.2f})" for c in chosen]
                    tally.misses.append(f"{turn['user']!r}: expected {expected}, read {read}")
        finally:
            store.close()
            folder.cleanup()
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--misses", action="store_true", help="print each question missed")
    args = parser.parse_args(argv)
    for path in args.files:
        with path.open(encoding="utf-8") as lines:
            tally = check(json.loads(line) for line in lines if line.strip())
        print(
            f"{path}: answered {tally.answered}/{tally.questions}, "
            f"abstained {tally.abstained}/{tally.absent}",
            file=sys.stdout,
        )
        if args.misses:
            for miss in tally.misses:
                print(f"  {miss}", file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
