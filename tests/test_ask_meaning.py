"""`memcli ask` picks the fact a question is about by meaning, as `memcli chat` does."""

from __future__ import annotations

from memcli.cli.ask import _answer_from_memory
from memcli.runtime.events import Done
from memcli.store.core import TripleStore


class RecordingEngine:
    """Records the read planned for it; answers with a fixed Done."""

    def __init__(self) -> None:
        self.planned: list = []

    def plan_read(self, queries) -> None:
        self.planned.append(list(queries))

    def answer(self, history, *, memory: bool = True):
        yield Done("Hamar.", "Hamar.")


def test_ask_reads_the_fact_chosen_by_meaning(tmp_path) -> None:
    with TripleStore(tmp_path / "m.db") as store:
        store.add("Rolf Aasen", "residence", "Hamar")
        store.add("Rolf Aasen", "employer", "Arcwise Labs")
        engine = RecordingEngine()
        question = "Which town is Rolf Aasen's home?"
        events = list(_answer_from_memory(engine, store, question, []))
        assert [(q.subject, q.relation) for q in engine.planned[0]] == [("Rolf Aasen", "residence")]
        assert isinstance(events[-1], Done)


def test_ask_about_a_known_entity_without_the_fact_abstains(tmp_path) -> None:
    with TripleStore(tmp_path / "m.db") as store:
        store.add("Rolf Aasen", "residence", "Hamar")
        engine = RecordingEngine()
        events = list(_answer_from_memory(engine, store, "When was Rolf Aasen born?", []))
        assert engine.planned == []
        assert events[-1].text == "I have nothing about that in memory."


def test_ask_about_everything_lists_the_facts_and_reads_them(tmp_path) -> None:
    with TripleStore(tmp_path / "m.db") as store:
        store.add("Rolf Aasen", "residence", "Hamar")
        store.add("Rolf Aasen", "employer", "Arcwise Labs")
        engine = RecordingEngine()
        [*_, done] = _answer_from_memory(engine, store, "What do you know about Rolf?", [])
        assert engine.planned == []  # no model turn
        assert done.text == (
            "From memory: Rolf Aasen - residence: Hamar; Rolf Aasen - employer: Arcwise Labs."
        )
        assert done.raw.startswith("({MEM_READ(Rolf Aasen>>residence>>)-->Hamar})")
        assert [f.object for read in done.reads for f in read.facts] == ["Hamar", "Arcwise Labs"]
        [*_, nothing] = _answer_from_memory(engine, store, "Tell me about Oslo.", [])
        assert nothing.text == "I have nothing about that in memory."
