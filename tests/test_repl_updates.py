"""The REPL shows an update as `subject >> relation: old → new`, asks for it in approval
mode like any write, and /why says when the fact read became current."""

from __future__ import annotations

from tests.test_repl import Chat

MOVE = "({MEM_WRITE-->Dana Whitfield>>residence>>Bergen})"
READ = "({MEM_READ(Dana Whitfield>>residence>>)-->Bergen}) Bergen."


def test_an_update_is_shown_with_the_old_and_the_new_value():
    chat = Chat(MOVE, "Noted.", facts=(("Dana Whitfield", "residence", "Oslo"),))
    out = chat.type("Dana Whitfield moved to Bergen last week.\n")
    assert "updated Dana Whitfield >> residence: Oslo → Bergen" in out
    assert [t.object for t in chat.store.find(subject="Dana Whitfield")] == ["Bergen"]
    assert chat.conversation.last.superseded[0].object == "Oslo"
    chat.type("/undo\n")
    assert [t.object for t in chat.store.find(subject="Dana Whitfield")] == ["Oslo"]


def test_approval_asks_for_an_update_showing_what_it_replaces():
    chat = Chat(MOVE, "Noted.", approve=True, facts=(("Dana Whitfield", "residence", "Oslo"),))
    out = chat.type("Dana Whitfield moved to Bergen.\nn\n")
    assert "1/1" in out and "Dana Whitfield >> residence: Oslo → Bergen" in out
    assert [t.object for t in chat.store.find(subject="Dana Whitfield")] == ["Oslo"]


def test_why_says_when_the_fact_became_current():
    chat = Chat(
        READ,
        facts=(("Dana Whitfield", "residence", "Oslo"), ("Dana Whitfield", "residence", "Bergen")),
    )
    old, new = chat.store.find(subject="Dana Whitfield", history=True)
    out = chat.type("Where does Dana Whitfield live now?\n/why\n")
    why = out.split("/why")[-1]
    assert f"#{new.id} current since {old.superseded_at[:16].replace('T', ' ')}" in why
    assert f"replacing Oslo (#{old.id})" in why


def test_the_model_read_returns_current_facts_only():
    chat = Chat(
        READ,
        facts=(("Dana Whitfield", "residence", "Oslo"), ("Dana Whitfield", "residence", "Bergen")),
    )
    chat.type("Where does Dana Whitfield live now?\n")
    assert [t.object for t in chat.conversation.last.facts_read] == ["Bergen"]
    results = [r for read in chat.conversation.last.reads for r in read.results]
    assert "Oslo" not in " ".join(results)
