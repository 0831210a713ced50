"""Gold data for `memcli eval`: text rebuilt from tokens, mention surfaces, evidence,
relation names, and one-line errors for bad data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memcli.errors import NotFoundError, UsageError
from memcli.evaluation.data import (
    DEFAULT_DATA,
    DataError,
    detokenize,
    load_documents,
    parse_docs,
)
from tests.cli_helpers import run

FIXTURE = Path(__file__).parent / "fixtures" / "eval_docs.json"


def test_detokenize_punctuation_quotes_and_joiners():
    text, spans = detokenize(
        [
            "Lipsky",
            "(",
            "September",
            "6",
            ",",
            "1911",
            ")",
            "wrote",
            '"',
            "Kiss",
            "of",
            "Death",
            '"',
            ",",
            "The",
            "Devil",
            "'s",
            "Daughter",
            "and",
            "Book",
            "-",
            "of",
            "-",
            "the",
            "-",
            "Month",
            ";",
            "55.5",
            "%",
            "\xa0",
            "$",
            "5",
            ".",
        ]
    )
    assert text == (
        'Lipsky (September 6, 1911) wrote "Kiss of Death", The Devil\'s Daughter and '
        "Book-of-the-Month; 55.5% $5."
    )
    assert [text[a:b] for a, b in spans[:3]] == ["Lipsky", "(", "September"]
    assert spans[29] == (spans[28][1], spans[28][1])  # the no-break space takes no room


def test_fixture_mentions_are_in_document_order_with_exact_surfaces():
    lake, rihanna = load_documents(FIXTURE)
    assert lake.sentences[0] == "Lake Geneva, or Lac Léman, is a lake in Switzerland."
    geneva = lake.entities[0]
    assert [m.surface for m in geneva.mentions] == ["Lake Geneva", "Lac Léman"]
    assert geneva.name == "Lake Geneva"  # the first mention, though listed second
    assert lake.text[lake.position(geneva.mentions[1]) :].startswith("Lac Léman,")
    assert [(f.head, f.relation, f.tail) for f in lake.write_gold(1)] == [(3, "country", 2)]
    assert lake.write_gold(2) == []  # Geneva >> country >> Switzerland: not both in it
    assert rihanna.index == 1 and rihanna.label == "document 1 ('Rihanna')"


# -- a real document of the development split -----------------------------------------------


@pytest.fixture(scope="module")
def lipsky():
    if not DEFAULT_DATA.is_file():
        pytest.skip(f"development split not found at {DEFAULT_DATA}")
    (doc,) = load_documents(DEFAULT_DATA, "450:451")
    return doc


def test_real_document_text_and_surfaces(lipsky):
    assert lipsky.title == "Eleazar Lipsky"
    assert lipsky.sentences[0] == (
        "Eleazar Lipsky (September 6, 1911 – February 14, 1993) was a prosecutor, lawyer, "
        "novelist and playwright born in the Bronx, New York, United States."
    )
    surfaces = {e.index: e.surfaces for e in lipsky.entities}
    assert surfaces[0] == ("Eleazar Lipsky", "Lipsky")  # sentence 0, then 3 and 4
    assert surfaces[1] == ("September 6, 1911",)  # the data's name is "September 6 , 1911"
    assert surfaces[9] == ("The People Against O'Hara",)
    assert surfaces[12] == ("The Devil's Daughter",)
    assert surfaces[18] == ("Book-of-the-Month Club",)
    for e in lipsky.entities:
        for m in e.mentions:
            assert lipsky.sentences[m.sent][m.start : m.end] == m.surface
    assert sorted(lipsky.entities[0].sentences) == [0, 3, 4]
    assert lipsky.entities[1].first.type == "TIME"


def test_real_document_relations_and_evidence(lipsky):
    assert len(lipsky.facts) == 38
    first = lipsky.facts[0]
    assert (first.head, first.relation_id, first.relation, first.tail, first.evidence) == (
        3,
        "P131",
        "located in the administrative territorial entity",
        4,
        (0,),
    )
    manhattan = lipsky.facts[4]  # Manhattan >> country >> United States, evidence 0 and 3
    assert (manhattan.relation, manhattan.evidence) == ("country", (0, 3))
    assert lipsky.facts[8].relation == "date of birth" and lipsky.facts[8].evidence == ()


def test_real_document_write_gold(lipsky):
    def named(sent):
        return [
            (lipsky.entities[f.head].name, f.relation, lipsky.entities[f.tail].name)
            for f in lipsky.write_gold(sent)
        ]

    # Manhattan >> country >> United States cites sentences 0 and 3 but is in neither
    # with both entities, so no write after either sentence should name it.
    assert named(0) == [
        ("Bronx", "located in the administrative territorial entity", "New York"),
        ("Bronx", "country", "United States"),
        ("New York", "contains administrative territorial entity", "Bronx"),
        ("New York", "country", "United States"),
        ("Eleazar Lipsky", "country of citizenship", "United States"),
        ("Bronx", "located in the administrative territorial entity", "United States"),
    ]
    assert [named(s) for s in range(1, 5)] == [[], [], [], []]


# -- selecting documents and bad data --------------------------------------------------------


def test_parse_docs():
    assert parse_docs(None, 5) == range(5)
    assert parse_docs("3", 5) == range(3)
    assert parse_docs("1:4", 5) == range(1, 4)
    assert parse_docs("2:", 5) == range(2, 5)
    assert parse_docs(":2", 5) == range(2)
    for bad, says in (
        ("x", "expected N or A:B"),
        ("4:2", "selects no documents"),
        ("0", "selects no documents"),
        ("400:600", "out of range"),
    ):
        with pytest.raises(UsageError, match=says):
            parse_docs(bad, 500)


def write_docs(tmp_path, docs) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(docs))
    return path


def good_doc() -> dict:
    return json.loads(FIXTURE.read_text())[1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["labels"][1].update(h=7),
            "document 0 ('Rihanna'): labels[1].h: entity 7 out of range (the document has "
            "4 entities)",
        ),
        (
            lambda d: d["labels"][0].update(r="P9999"),
            "document 0 ('Rihanna'): labels[0].r: unknown relation id 'P9999'",
        ),
        (
            lambda d: d["labels"][0].update(evidence=[5]),
            "document 0 ('Rihanna'): labels[0].evidence[0]: sentence 5 out of range",
        ),
        (
            lambda d: d["vertexSet"][2][0].update(pos=[6, 12]),
            "document 0 ('Rihanna'): vertexSet[2][0].pos: [6, 12] is not a token span",
        ),
        (
            lambda d: d["vertexSet"][2][0].update(sent_id="1"),
            "document 0 ('Rihanna'): vertexSet[2][0].sent_id: expected a whole number, found "
            "a string",
        ),
        (lambda d: d.pop("sents"), "document 0 ('Rihanna'): sents: missing"),
        (lambda d: d["vertexSet"].append([]), "document 0 ('Rihanna'): vertexSet[4]: is empty"),
    ],
)
def test_bad_documents_name_the_document_and_field(tmp_path, change, message):
    doc = good_doc()
    change(doc)
    path = write_docs(tmp_path, [doc])
    with pytest.raises(DataError) as info:
        load_documents(path)
    text = str(info.value)
    assert message in text and text.startswith(f"{path}: ") and "\n" not in text


def test_bad_files(tmp_path):
    with pytest.raises(NotFoundError):
        load_documents(tmp_path / "missing.json")
    path = tmp_path / "x.json"
    path.write_text('{"title": 1}')
    with pytest.raises(DataError, match="expected a JSON list of documents, found an object"):
        load_documents(path)
    path.write_text("[{")
    with pytest.raises(DataError, match="not valid JSON"):
        load_documents(path)
    path.write_text("[3]")
    with pytest.raises(DataError, match=r"document 0: document: expected an object"):
        load_documents(path)


def test_only_the_chosen_documents_are_checked(tmp_path):
    bad = good_doc()
    bad["labels"][0]["t"] = 99
    path = write_docs(tmp_path, [good_doc(), bad])
    assert len(load_documents(path, "1")) == 1
    with pytest.raises(DataError, match=r"document 1 \('Rihanna'\): labels\[0\]\.t"):
        load_documents(path, "0:2")


def test_cli_reports_bad_data_in_one_line(tmp_path):
    doc = good_doc()
    doc["labels"][1]["t"] = 12
    path = write_docs(tmp_path, [doc])
    for mode in ("write", "qa", "ppl"):
        result = run("eval", mode, "--data", str(path))
        assert result.exit_code == 1
        assert result.stdout == ""
        assert result.stderr == (
            f"memcli: error: {path}: document 0 ('Rihanna'): labels[1].t: entity 12 out of "
            "range (the document has 4 entities)\n"
        )
    result = run("eval", "write", "--data", str(path), "--docs", "3:9")
    assert result.exit_code == 2
    assert "--docs '3:9': out of range, the data file has 1 document\n" in result.stderr


def test_without_the_default_data_file_data_is_required(tmp_path, monkeypatch):
    monkeypatch.setattr("memcli.evaluation.data.DEFAULT_DATA", tmp_path / "none.json")
    result = run("eval", "ppl")
    assert result.exit_code == 2
    assert result.stderr.startswith("memcli: error: no data file: pass --data FILE")
