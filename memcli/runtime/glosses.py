"""What the DocRED relation names mean, in a sentence each: close paraphrases of the
English descriptions of their Wikidata properties (CC0). Matching by meaning compares a
question or a statement to a relation's name *and* its gloss (whichever is closer), so
that a name like "record label" also matches talk of recordings. A relation without a
gloss (a user's own, `--new-relation`) is matched by its name alone.

Two more facts about each relation help choose among them, as Wikidata's property
constraints do: `HUMAN_RELATIONS`, whose subject is a person (a sentence or question
about a person is matched against these, and a user's own relations, only), and
`VALUE_TYPES`, what kind of thing the object is ("a city, town or place" for
`residence`): a written object's name is compared to it, so that "works at Arcwise Labs"
is `employer` and "works in Dunedin" is `work location`. A relation without a value type
is compared as "a <its name>" ("a favourite dish")."""

from __future__ import annotations

import functools

GLOSSES: dict[str, str] = {
    "head of government": "the head of the executive power of a town, city, state or country",
    "country": "the sovereign state that this item is in",
    "place of birth": "the most specific known place where a person was born",
    "place of death": "the most specific known place where a person died",
    "father": "the male parent of the person",
    "mother": "the female parent of the person",
    "spouse": "the person's husband, wife or partner in marriage",
    "country of citizenship": "the country that recognizes the person as its citizen",
    "continent": "the continent of which the subject is a part",
    "instance of": "the class of which this subject is a particular example",
    "head of state": "the official with the highest formal authority in a country or state",
    "capital": "the seat of government of a country, province or state",
    "official language": "the language designated as official by a country or organization",
    "position held": "the position or public office the person holds or held",
    "child": "the person's son or daughter",
    "author": "the main creator of a written work",
    "member of sports team": "the sports team or club the person plays for",
    "director": "the director of a film, television series or play",
    "screenwriter": "the person who wrote the script for a film or television series",
    "educated at": "the educational institution the person attended",
    "composer": "the person who wrote the music",
    "member of political party": "the political party of which the person is a member",
    "employer": "the company or organization the person works for",
    "founded by": "the founder or co-founder of this organization or place",
    "league": "the league in which the team or player plays",
    "publisher": "the organization responsible for publishing books, periodicals or games",
    "owned by": "the owner of the subject",
    "located in the administrative territorial entity": (
        "the administrative area (region, province, municipality) the item is located in"
    ),
    "genre": "the genre of a creative work or an artist's field of work",
    "operator": "the person or organization that operates the equipment, facility or service",
    "religion": "the religion of a person or organization",
    "headquarters location": "the city where an organization's headquarters is",
    "cast member": "an actor in the film or production",
    "producer": "the person or company who produced the film, album or show",
    "award received": "an award or prize received by the person, organization or work",
    "creator": "the maker of this creative work or object",
    "performer": "the musician, band or actor who performs this work or role",
    "manufacturer": "the company that manufactures this product",
    "developer": "the organization or person that developed the software or product",
    "record label": "the record company the musician is signed to, which releases their music",
    "production company": "the company that produced this film or show",
    "location": "the place where the object, structure or event is",
    "part of": "the larger whole of which the subject is a part",
    "member of": "the organization, club or musical group to which the subject belongs",
    "chairperson": "the presiding member who chairs the organization, board or body",
    "country of origin": "the country a creative work, product or food comes from",
    "residence": "the place where the person lives or has lived",
    "date of birth": "the date on which the person was born",
    "date of death": "the date on which the person died",
    "inception": "the date when an organization or thing began to exist",
    "notable work": "a notable work created by the person",
    "work location": "the place where the person works or carries out their business",
    "languages spoken, written or signed": "a language the person speaks, writes or signs",
    "sibling": "the person's brother or sister",
    "parent organization": "the organization that owns this organization",
    "subsidiary": "a company owned by this company",
    "ethnic group": "the person's ethnicity",
    "military branch": "the branch of the armed forces the person or unit belongs to",
    "conflict": "a war or battle in which the person or unit took part",
    "influenced by": "a person or idea that influenced this person or idea",
    "participant": "a person or organization that takes part in an event",
    "participant of": "an event in which the person or organization took part",
    "lyrics by": "the author of the song's lyrics",
    "original network": "the television or radio network that first broadcast the program",
    "sister city": "a twin town or sister city",
    "publication date": "the date when a work was first published or released",
}


# Other names of a relation, for reads: a few of the English aliases ("also known as") of
# its Wikidata property (CC0), as nouns that fit `embeddings.relation_text` ("the
# nationality of someone"). A question scores a relation by the closest of its name and
# its aliases: "What nationality is Dana?" is 0.93 from "nationality" and 0.60 from
# "country of citizenship", while `ethnic group` (0.73) was closer than the name.
ALIASES: dict[str, tuple[str, ...]] = {
    "country of citizenship": ("nationality", "citizenship"),
    "residence": ("home", "place of residence"),
    "educated at": ("alma mater",),
    "spouse": ("husband", "wife"),
    "sibling": ("brother", "sister"),
    "child": ("son", "daughter"),
    "languages spoken, written or signed": ("language", "mother tongue"),
    "member of sports team": ("team",),
    "record label": ("label",),
    "work location": ("place of work",),
    "date of birth": ("birthday",),
}

# Relations that answer the same everyday question: "Where does Dana work?" is closest to
# `work location`, and "She works at Tidewater Foods" (`employer`) answers it as well.
# A question closest to one of them reads the other's fact when memory has no fact of
# the closest.
ANSWERS_ALIKE: dict[str, tuple[str, ...]] = {
    "work location": ("employer",),
    "employer": ("work location",),
}

# Relations whose subject Wikidata constrains to people (subject type: human).
HUMAN_RELATIONS = frozenset(
    {
        "residence",
        "employer",
        "educated at",
        "spouse",
        "sibling",
        "child",
        "father",
        "mother",
        "languages spoken, written or signed",
        "record label",
        "member of sports team",
        "place of birth",
        "place of death",
        "date of birth",
        "date of death",
        "country of citizenship",
        "work location",
        "member of political party",
        "position held",
        "religion",
        "ethnic group",
        "notable work",
        "award received",
        "military branch",
    }
)

_PLACE = "a city, town or place"
PERSON_VALUE = _PERSON = "a person's name"
VALUE_TYPES: dict[str, str] = {
    "residence": _PLACE,
    "place of birth": _PLACE,
    "place of death": _PLACE,
    "work location": _PLACE,
    "country of citizenship": "a country",
    "employer": "a company or organization",
    "record label": "a record label",
    "educated at": "a school or university",
    "member of sports team": "a sports team",
    "member of political party": "a political party",
    "military branch": "a branch of the armed forces",
    "languages spoken, written or signed": "a language",
    "spouse": _PERSON,
    "sibling": _PERSON,
    "child": _PERSON,
    "father": _PERSON,
    "mother": _PERSON,
    "date of birth": "a date",
    "date of death": "a date",
    "ethnic group": "an ethnic group",
    "religion": "a religion",
    "position held": "a position or public office",
    "award received": "an award or prize",
    "notable work": "a book, film or other creative work",
    # Relations of organisations, places and works whose value is a person.
    "chairperson": _PERSON,
    "founded by": _PERSON,
    "head of government": _PERSON,
    "head of state": _PERSON,
    "director": _PERSON,
    "author": _PERSON,
    "composer": _PERSON,
    "screenwriter": _PERSON,
    "lyrics by": _PERSON,
    "cast member": _PERSON,
}


def value_type(relation: str) -> str:
    """What the relation's object is, as a short noun phrase to embed."""
    return VALUE_TYPES.get(relation) or f"a {relation}"


@functools.cache
def _builtin() -> frozenset[str]:
    from memcli.store.core import builtin_relations

    return frozenset(builtin_relations().values())


def about_people(relation: str) -> bool:
    """Whether a relation may have a person as its subject: one of `HUMAN_RELATIONS`, or
    one that is not a DocRED name (a user's own relation)."""
    return relation in HUMAN_RELATIONS or relation not in _builtin()
