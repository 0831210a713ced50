"""The memory-command language: exact formats, round trips, errors, and the stream parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memcli.errors import MemcliError
from memcli.protocol import (
    ARROW,
    CLOSE,
    ITEM_SEP,
    MAX_READ_QUERIES,
    MAX_READ_RESULTS,
    OPEN,
    READ_HEAD,
    SEP,
    WRITE_HEAD,
    CallClosed,
    CallError,
    CallOpened,
    CallText,
    ProtocolError,
    ReadCall,
    ReadQueries,
    ReadQuery,
    ReadResults,
    StreamParser,
    TextEvent,
    Triple,
    WriteCall,
    WriteTriples,
    format_read,
    format_read_call,
    format_read_results,
    format_write,
    name_problem,
    parse_call,
    parse_read,
    parse_write,
)

WRITE_EXAMPLE = "({MEM_WRITE-->Lake Geneva>>country>>Switzerland;Lake Geneva>>country>>France})"
READ_EXAMPLE = "({MEM_READ(Rihanna>>record label>>;>>performer>>Loud Tour)-->Def Jam;Rihanna})"
GENEVA = [
    Triple("Lake Geneva", "country", "Switzerland"),
    Triple("Lake Geneva", "country", "France"),
]
RIHANNA = [ReadQuery("Rihanna", "record label", None), ReadQuery(None, "performer", "Loud Tour")]


def test_constants():
    assert (OPEN, CLOSE, ARROW, SEP, ITEM_SEP) == ("({", "})", "-->", ">>", ";")
    assert (READ_HEAD, WRITE_HEAD) == ("({MEM_READ(", "({MEM_WRITE-->")
    assert (MAX_READ_QUERIES, MAX_READ_RESULTS) == (3, 30)


# --- formatting and parsing of whole calls ---------------------------------------------


def test_write_example():
    assert format_write(GENEVA) == WRITE_EXAMPLE
    assert parse_write(WRITE_EXAMPLE) == GENEVA
    assert parse_call(WRITE_EXAMPLE) == WriteCall(tuple(GENEVA))


def test_empty_write():
    assert format_write([]) == "({MEM_WRITE-->})"
    assert parse_write("({MEM_WRITE-->})") == []


def test_read_example():
    assert (
        format_read_call(RIHANNA) == "({MEM_READ(Rihanna>>record label>>;>>performer>>Loud Tour)-->"
    )
    assert format_read_results(["Def Jam", "Rihanna"]) == "Def Jam;Rihanna})"
    assert format_read(RIHANNA, ["Def Jam", "Rihanna"]) == READ_EXAMPLE
    assert parse_read(READ_EXAMPLE) == (RIHANNA, ["Def Jam", "Rihanna"])
    assert parse_call(READ_EXAMPLE) == ReadCall(tuple(RIHANNA), ("Def Jam", "Rihanna"))


def test_empty_read_results():
    assert format_read_results([]) == "})"
    text = format_read(RIHANNA[:1], [])
    assert text == "({MEM_READ(Rihanna>>record label>>)-->})"
    assert parse_read(text) == (RIHANNA[:1], [])


def test_results_deduplicated_in_order_and_capped():
    assert format_read_results(["Def Jam", "b", "def  jam", "B", "c"]) == "Def Jam;b;c})"
    many = [f"e{i}" for i in range(40)]
    assert format_read_results(many + ["e0"]) == ";".join(many[:30]) + "})"


def test_parse_strips_whitespace_around_names():
    assert parse_write("  ({MEM_WRITE--> a b >> c\t>>d })\n") == [Triple("a b", "c", "d")]
    assert parse_read("({MEM_READ( >> r >> x )--> y ; z })") == (
        [ReadQuery(None, "r", "x")],
        ["y", "z"],
    )


def test_read_query_model():
    q = ReadQuery("Rihanna", "record label", None)
    assert q.missing == "object" and q.entity == "Rihanna"
    assert ReadQuery(None, "performer", "Loud Tour").missing == "subject"
    assert q.key() == ReadQuery(" rihanna ", "Record   Label", None).key()
    assert q.key() != ReadQuery(None, "record label", "Rihanna").key()
    for s, o in [(None, None), ("a", "b")]:
        with pytest.raises(ProtocolError):
            ReadQuery(s, "r", o)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "is empty"),
        (" a", "whitespace"),
        ("a\nb", "line break"),
        ("a>>b", "'>>'"),
        ("a;b", "';'"),
        ("a({b", "'({'"),
        ("a})b", "'})'"),
        ("a-->b", "'-->'"),
        ("a>", "ends with '>'"),
        ("a--", "ends with '--'"),
    ],
)
def test_name_problem(name, problem):
    assert problem in name_problem(name)


@pytest.mark.parametrize("name", ["a", ">a", "a>b", "{a}", "f(x)", "a-", "-a-b", "a)--b", "x}"])
def test_unusual_but_valid_names(name):
    assert name_problem(name) is None
    t = Triple(name, name, name)
    assert parse_write(format_write([t])) == [t]
    q = ReadQuery(name, name, None)
    assert parse_read(format_read([q], [name])) == ([q], [name])


def test_leftmost_matching():
    assert parse_write("({MEM_WRITE-->a>>>b>>c})") == [Triple("a", ">b", "c")]
    assert parse_read("({MEM_READ(x)>>r>>)-->})")[0] == [ReadQuery("x)", "r", None)]
    assert parse_write("({MEM_WRITE-->a>>b>>c}})") == [Triple("a", "b", "c}")]


def test_format_refuses_invalid_names():
    with pytest.raises(ProtocolError, match="object 'a;b' contains ';'"):
        format_write([Triple("x", "y", "a;b")])
    with pytest.raises(ProtocolError, match="ends with '>'"):
        format_read_call([ReadQuery("a>", "r", None)])
    with pytest.raises(ProtocolError, match="result"):
        format_read_results(["ok", "b})"])
    with pytest.raises(ProtocolError, match="1 to 3 queries"):
        format_read_call([])
    with pytest.raises(ProtocolError, match="1 to 3 queries"):
        format_read_call([ReadQuery("a", "r", None)] * 4)


MALFORMED = [
    # (text, words in the message, offset)
    ("({MEM_WRITE-->a>>b})", "found 2 part(s) in 'a>>b'", 14),
    ("({MEM_WRITE-->a>>b>>c>>d})", "found 4 part(s)", 14),
    ("({MEM_WRITE-->a>>b>>c;})", "found 1 part(s)", 22),
    ("({MEM_WRITE-->a>> >>c})", "relation is empty", 18),
    ("({MEM_WRITE-->>>b>>c})", "subject is empty", 14),
    ("({MEM_WRITE-->a>>b>>c", "missing '})'", 21),
    ("({MEM_WRITE-->a>>b>>c}) extra", "unexpected text after the call", 23),
    ("({MEM_WRITE-->a>>b>>c\nd>>e>>f})", "line break inside a call", 21),
    ("({MEM_WRITE-->a>>b>>x({y})", "object 'x({y' contains '({'", 20),
    ("({MEM_WRITE-->a >>b>>c-- })", "object 'c--' ends with '--'", 21),
    ("({MEM_READ()-->})", "at least one query", 11),
    ("({MEM_READ(>>r>>)-->})", "neither", 11),
    ("({MEM_READ(a>>r>>b)-->})", "both filled", 11),
    ("({MEM_READ(a>>>>)-->})", "relation is empty", 14),
    ("({MEM_READ(a>>r)-->})", "found 2 part(s)", 11),
    ("({MEM_READ(a>>r>>;b>>r>>;c>>r>>;d>>r>>)-->})", "at most 3 queries, found 4", 32),
    ("({MEM_READ(a>>r>>})", "missing ')-->'", 19),
    ("({MEM_READ(a>>r>>)-->x", "missing '})'", 22),
    ("({MEM_READ(a>>r>>)-->x;;y})", "result is empty", 23),
    ("({MEM_READ(a>>r>>)-->x>>y})", "result 'x>>y' contains '>>'", 21),
    ("({MEM_READ(a>>r>>)-->x})y", "unexpected text", 24),
    ("({MEM_REED(a>>r>>)-->x})", "expected '({MEM_READ(' or '({MEM_WRITE-->'", 0),
    ("plain text", "expected", 0),
]


@pytest.mark.parametrize(("text", "words", "offset"), MALFORMED)
def test_malformed_calls(text, words, offset):
    with pytest.raises(ProtocolError) as info:
        parse_call(text)
    assert info.value.offset == offset
    assert words in str(info.value)
    assert str(info.value).endswith(f"at offset {offset}")
    assert isinstance(info.value, MemcliError)


def test_parse_read_and_write_refuse_the_other_kind():
    with pytest.raises(ProtocolError, match=r"expected '\(\{MEM_WRITE-->'"):
        parse_write(READ_EXAMPLE)
    with pytest.raises(ProtocolError, match=r"expected '\(\{MEM_READ\('"):
        parse_read(WRITE_EXAMPLE)


# --- generated names: round trips ---------------------------------------------------------

_chars = st.one_of(
    st.characters(categories=["L", "N", "P", "S", "Zs"]),
    st.sampled_from(list("({})->;- <>")),
)
names = (
    st.text(_chars, min_size=1, max_size=12)
    .map(str.strip)
    .filter(lambda n: name_problem(n) is None)
)
triples = st.builds(Triple, names, names, names)


@st.composite
def read_queries(draw):
    relation, entity = draw(names), draw(names)
    if draw(st.booleans()):
        return ReadQuery(entity, relation, None)
    return ReadQuery(None, relation, entity)


queries_lists = st.lists(read_queries(), min_size=1, max_size=MAX_READ_QUERIES)
results_lists = st.lists(
    names, max_size=MAX_READ_RESULTS, unique_by=lambda n: " ".join(n.split()).casefold()
)


@given(st.lists(triples, max_size=5))
def test_write_round_trip(ts):
    text = format_write(ts)
    assert parse_write(text) == ts
    assert parse_call(text) == WriteCall(tuple(ts))


@given(queries_lists, results_lists)
def test_read_round_trip(qs, rs):
    text = format_read(qs, rs)
    assert text.startswith(format_read_call(qs)) and text.endswith(CLOSE)
    assert parse_read(text) == (qs, rs)


# --- stream parser ----------------------------------------------------------------------


def run(chunks, parser=None):
    parser = parser or StreamParser()
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return merge(events + parser.close())


def merge(events):
    out = []
    for e in events:
        if out and type(e) is type(out[-1]) and isinstance(e, (TextEvent, CallText)):
            out[-1] = type(e)(out[-1].text + e.text)
        else:
            out.append(e)
    return out


def fed_text(events):
    return "".join(e.text for e in events if isinstance(e, (TextEvent, CallText)))


def test_stream_read_token_by_token():
    tokens = [
        "Her label is ",
        "(",
        "{MEM_",
        "READ(",
        "Rih",
        "anna>",
        ">rec",
        "ord label>>",
        ")",
        "-->",
    ]
    p = StreamParser()
    seen = []
    for tok in tokens[:-1]:
        seen += p.feed(tok)
        assert not any(isinstance(e, ReadQueries) for e in seen)
    assert p.state == "read_query" and p.in_call
    last = p.feed(tokens[-1])
    assert last == [CallText("-->"), ReadQueries((ReadQuery("Rihanna", "record label", None),))]
    assert p.state == "read_results" and p.in_call
    assert p.feed("Def Jam})") == [
        CallText("Def Jam})"),
        ReadResults(("Def Jam",)),
        CallClosed("read", "({MEM_READ(Rihanna>>record label>>)-->Def Jam})"),
    ]
    assert p.state == "text" and not p.in_call
    assert p.feed(" Records.") == [TextEvent(" Records.")]
    assert merge(seen)[:3] == [
        TextEvent("Her label is "),
        CallOpened("read"),
        CallText("({MEM_READ(Rihanna>>record label>>)"),
    ]


def test_stream_write():
    text = "Lake Geneva borders France. " + WRITE_EXAMPLE + "\nNext"
    assert run([text]) == [
        TextEvent("Lake Geneva borders France. "),
        CallOpened("write"),
        CallText(WRITE_EXAMPLE),
        WriteTriples(tuple(GENEVA)),
        CallClosed("write", WRITE_EXAMPLE),
        TextEvent("\nNext"),
    ]


def test_stream_empty_calls():
    assert run(["({MEM_WRITE-->})"])[2:] == [
        WriteTriples(()),
        CallClosed("write", "({MEM_WRITE-->})"),
    ]
    empty_read = "({MEM_READ(>>performer>>Loud Tour)-->})"
    assert run([empty_read])[-2:] == [ReadResults(()), CallClosed("read", empty_read)]


def test_stream_holds_back_only_a_possible_head():
    p = StreamParser()
    assert p.feed("hello (") == [TextEvent("hello ")]
    assert p.feed("x") == [TextEvent("(x")]
    assert p.feed("({MEM_RE") == []
    assert p.state == "text" and not p.in_call
    assert p.feed("X") == [TextEvent("({MEM_REX")]
    assert p.feed("a (") == [TextEvent("a ")]
    assert p.close() == [TextEvent("(")]


@pytest.mark.parametrize(
    "text",
    [
        "f(x) = (y)",
        "a ({ b }) c",
        "({MEM_",
        "({MEM_ ({MEM_WRITE ({MEM_READ ({mem_read(",
        "((((",
        "code: if (x) {({})}",
        "arrows --> and >> and ; and })",
    ],
)
def test_text_that_is_not_a_call_passes_through(text):
    assert run([text]) == [TextEvent(text)]
    assert run(list(text)) == [TextEvent(text)]


def test_head_after_false_start():
    text = "({MEM_(({MEM_WRITE-->a>>b>>c})"
    assert run([text]) == [
        TextEvent("({MEM_("),
        CallOpened("write"),
        CallText("({MEM_WRITE-->a>>b>>c})"),
        WriteTriples((Triple("a", "b", "c"),)),
        CallClosed("write", "({MEM_WRITE-->a>>b>>c})"),
    ]


def test_stream_malformed_call_returns_to_text():
    events = run(["({MEM_WRITE-->a>>b}) and then ({MEM_READ(x>>y>>z)-->}) end"])
    errors = [e for e in events if isinstance(e, CallError)]
    assert [e.raw for e in errors] == ["({MEM_WRITE-->a>>b})", "({MEM_READ(x>>y>>z)-->"]
    assert "found 2 part(s)" in errors[0].message and "offset 14" in errors[0].message
    assert "both filled" in errors[1].message
    assert [e for e in events if isinstance(e, TextEvent)] == [
        TextEvent(" and then "),
        TextEvent("}) end"),
    ]


def test_stream_line_break_ends_a_call():
    events = run(["({MEM_READ(a>>b\nrest"])
    assert events[-2:] == [
        CallError("({MEM_READ(a>>b", "line break inside a call at offset 15"),
        TextEvent("\nrest"),
    ]


@pytest.mark.parametrize(
    "text", ["({MEM_WRITE-->a>>b>>c", "({MEM_READ(a>>b>>", "({MEM_READ(a>>b>>)-->x"]
)
def test_unfinished_call_at_close(text):
    p = StreamParser()
    p.feed(text)
    assert p.in_call
    [error] = p.close()
    assert error.raw == text and "unfinished" in error.message
    assert p.state == "text"


def test_results_fed_by_the_system():
    p = StreamParser()
    events = p.feed("He sang on " + format_read_call(RIHANNA[1:]))
    [queries] = [e for e in events if isinstance(e, ReadQueries)]
    assert queries.queries == tuple(RIHANNA[1:])
    events = p.feed(format_read_results(["Rihanna", "rihanna"]))
    assert events[-2:] == [
        ReadResults(("Rihanna",)),
        CallClosed("read", "({MEM_READ(>>performer>>Loud Tour)-->Rihanna})"),
    ]


_text_chars = st.sampled_from(list("ab \n(){}<>-;_EMRDWIT") + ["({", "({MEM_", "})", "-->"])
plain_pieces = st.lists(_text_chars, max_size=8).map("".join)
calls = st.one_of(
    st.lists(triples, max_size=3).map(format_write),
    st.builds(format_read, queries_lists, st.lists(names, max_size=4)),
    st.sampled_from(
        [
            "({MEM_WRITE-->a>>b})",
            "({MEM_READ(x>>y>>z)-->",
            "({MEM_READ(a>>b>>)-->x;;y})",
            "({MEM_READ(a>>b>>",
            "({MEM_WRITE-->a>>b>>c\n",
            "({MEM_({MEM_READ(",
        ]
    ),
)
documents = st.lists(st.one_of(plain_pieces, calls), max_size=6).map("".join)


@st.composite
def chunked(draw):
    text = draw(documents)
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=len(text))))
    bounds = [0, *cuts, len(text)]
    return text, [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=300)
@given(chunked())
def test_events_do_not_depend_on_chunking(case):
    text, chunks = case
    whole = run([text])
    assert run(chunks) == whole
    assert run(list(text)) == whole
    assert fed_text(whole) == text


@given(st.lists(triples, min_size=1, max_size=3), queries_lists, results_lists, plain_pieces)
def test_stream_finds_generated_calls(ts, qs, rs, gap):
    write, read = format_write(ts), format_read(qs, rs)
    gap = gap.replace("(", "[")
    events = run(list(gap + write + gap + read + gap))
    assert [e for e in events if not isinstance(e, (TextEvent, CallText))] == [
        CallOpened("write"),
        WriteTriples(tuple(ts)),
        CallClosed("write", write),
        CallOpened("read"),
        ReadQueries(tuple(qs)),
        ReadResults(tuple(rs)),
        CallClosed("read", read),
    ]


@given(st.lists(st.text(max_size=10), max_size=10))
def test_feed_never_raises(chunks):
    p = StreamParser()
    for chunk in chunks:
        p.feed(chunk)
    p.close()
    assert p.state == "text"
