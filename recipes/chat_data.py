"""Short conversations of everyday language for `memcli eval chat` (and for training).

Each conversation is one JSON line in the format `memcli.evaluation.chat` documents:
people state facts in their own words (names, pronouns, first person), ask about them in
other words, change them ("moved to", "now works for"), deny or imagine things (nothing
to store), ask about facts never told (the answer is "I don't know"), and say things
that need no memory at all (greetings, thanks, requests).

Splits that share nothing but the relation names: `train` and `dev` draw their
people, places and organisations from disjoint pools, their statement and question
wordings from disjoint templates, and `dev` also has relations that `train` never uses
(`DEV_ONLY_RELATIONS`). `test` has its own names and wordings again, written after the
relation checks were tuned, and is run once, as a held-out check of the dev figures.
Deterministic for a seed.

    python -m recipes.chat_data --split dev --count 40 -o recipes/data/chat_dev.jsonl
    python -m recipes.chat_data --split test --count 30 -o recipes/data/chat_test.jsonl

After the `count` conversations about a person come `special` ones (a quarter of
`count` by default) of each of two kinds: the person's own facts in the first person,
with a relative named beside their kinship ("My sister Ingrid Solberg lives in …"), and
who chairs an organisation, then "the new chairperson of … is …" (an update).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# -- pools (disjoint between the splits) -------------------------------------------------

FIRST = {
    "train": [
        "Dana",
        "Rolf",
        "Ingrid",
        "Marta",
        "Jonas",
        "Priya",
        "Kofi",
        "Elena",
        "Tomas",
        "Yuki",
        "Amara",
        "Lars",
        "Sofia",
        "Mateo",
        "Hana",
        "Oskar",
        "Leila",
        "Viktor",
    ],
    "dev": [
        "Astrid",
        "Malik",
        "Sigrid",
        "Rafael",
        "Teodor",
        "Mirela",
        "Kenji",
        "Olu",
        "Freya",
        "Anton",
        "Zainab",
        "Henrik",
        "Carmen",
        "Idris",
        "Linnea",
        "Basil",
    ],
    "test": [
        "Maren",
        "Tobias",
        "Ayla",
        "Joaquin",
        "Runa",
        "Femi",
        "Noor",
        "Casper",
        "Ilse",
        "Dmitri",
        "Solveig",
        "Omar",
    ],
}
LAST = {
    "train": [
        "Whitfield",
        "Aasen",
        "Okafor",
        "Lindqvist",
        "Moreau",
        "Tanaka",
        "Haugen",
        "Petrov",
        "Silva",
        "Brennan",
        "Quist",
        "Adeyemi",
    ],
    "dev": [
        "Solberg",
        "Castellanos",
        "Mwangi",
        "Fairbanks",
        "Oyelaran",
        "Kowalczyk",
        "Thorsen",
        "Delacroix",
        "Hartmann",
        "Nakamura",
        "Ferreira",
        "Lundgren",
    ],
    "test": [
        "Eriksen",
        "Balogun",
        "Marchetti",
        "Holloway",
        "Virtanen",
        "Osei",
        "Brandt",
        "Sandoval",
    ],
}
# She/he for each first name (for pronoun statements).
FEMININE = {
    "Dana",
    "Ingrid",
    "Marta",
    "Priya",
    "Elena",
    "Yuki",
    "Amara",
    "Sofia",
    "Hana",
    "Leila",
    "Astrid",
    "Sigrid",
    "Mirela",
    "Freya",
    "Zainab",
    "Carmen",
    "Linnea",
    "Maren",
    "Ayla",
    "Runa",
    "Noor",
    "Ilse",
    "Solveig",
}

POOLS = {
    "city": {
        "train": [
            "Oslo",
            "Bergen",
            "Hamar",
            "Lyon",
            "Porto",
            "Kyoto",
            "Nairobi",
            "Tampere",
            "Graz",
            "Leeds",
        ],
        "dev": [
            "Tromsø",
            "Aarhus",
            "Valencia",
            "Gdansk",
            "Kumasi",
            "Sapporo",
            "Trieste",
            "Halifax",
            "Dunedin",
            "Uppsala",
        ],
        "test": ["Stavanger", "Bilbao", "Turku", "Accra", "Innsbruck", "Nagoya", "Cork", "Brno"],
    },
    "company": {
        "train": [
            "Arcwise Labs",
            "Bryne Foods",
            "Northwind Shipping",
            "Helix Bank",
            "Tidewater Games",
            "Quarry Systems",
        ],
        "dev": [
            "Fjordline Robotics",
            "Copperleaf Studio",
            "Meridian Freight",
            "Solace Health",
            "Brightwater Energy",
            "Granite Peak Software",
        ],
        "test": [
            "Lumen Analytics",
            "Harbor Crane Works",
            "Tessera Pharma",
            "Northgate Logistics",
            "Pebble Bay Media",
        ],
    },
    "school": {
        "train": ["Nordhavn Academy", "Westbrook College", "Lakeside Institute"],
        "dev": ["Kestrel University", "Harbourview College", "Pinecrest Academy"],
        "test": ["Ravenswood University", "Elmstead College"],
    },
    "label": {
        "train": ["Blue Harbor Records", "Northstar Music"],
        "dev": ["Silverline Records", "Redwood Sound"],
        "test": ["Blackbird Records", "Tidal Pool Music"],
    },
    "language": {
        "train": ["Spanish", "Japanese", "Finnish", "Hindi"],
        "dev": ["Portuguese", "Swahili", "Polish", "Korean"],
        "test": ["Dutch", "Turkish", "Tagalog"],
    },
    "team": {
        "train": ["Hamar Falcons", "Lyon Comets"],
        "dev": ["Aarhus Otters", "Valencia Herons"],
        "test": ["Turku Lynx", "Bilbao Storm"],
    },
    "country": {
        "train": ["Norway", "Kenya", "France", "Japan"],
        "dev": ["Ghana", "Canada", "Poland", "Chile"],
        "test": ["Ireland", "Peru", "Austria"],
    },
}

# -- relations and wordings ---------------------------------------------------------------


@dataclass(frozen=True)
class Wording:
    relation: str
    pool: str  # the object's pool ("person" for another person)
    statements: dict[str, list[str]]  # split -> templates with {s} and {o}
    questions: dict[str, list[str]]  # split -> templates with {s}
    updates: dict[str, list[str]] | None = None  # split -> templates with {s}, {o}


WORDINGS = [
    Wording(
        "residence",
        "city",
        {
            "train": ["{s} resides in {o}.", "{s} has a house in {o}.", "{s} makes a home in {o}."],
            "dev": ["{s} lives in {o}.", "{s}'s home is in {o}.", "{s} is based in {o}."],
            "test": ["{s} stays in {o} these days.", "{s} has lived in {o} for years."],
        },
        {
            "train": ["In which city does {s} reside?", "Where's {s}'s house?"],
            "dev": [
                "Where does {s} live?",
                "Which town is {s}'s home?",
                "Where is {s} based these days?",
            ],
            "test": ["What city does {s} live in?", "Where is {s} living?"],
        },
        {
            "train": ["{s} moved house to {o}.", "{s} relocated to {o} this spring."],
            "dev": ["{s} moved to {o} last week.", "{s} has just moved to {o}."],
            "test": ["{s} relocated to {o} in May."],
        },
    ),
    Wording(
        "employer",
        "company",
        {
            "train": ["{s} is employed by {o}.", "{s} has a job at {o}."],
            "dev": ["{s} works for {o}.", "{s} works at {o}."],
            "test": ["{s} is on the staff of {o}.", "{s} earns a living at {o}."],
        },
        {
            "train": ["Who employs {s}?", "Which firm is {s} employed by?"],
            "dev": ["Who does {s} work for?", "Where does {s} work?", "Which company is {s} with?"],
            "test": ["Which organisation does {s} work for?", "Who is {s}'s employer?"],
        },
        {
            "train": ["{s} switched jobs and is employed by {o} now.", "{s} took a job at {o}."],
            "dev": ["{s} now works for {o}.", "{s} no longer works there; she joined {o}."],
            "test": ["{s} has a new job at {o} now."],
        },
    ),
    Wording(
        "educated at",
        "school",
        {
            "train": ["{s} graduated from {o}.", "{s} was a student at {o}."],
            "dev": ["{s} studied at {o}.", "{s} went to school at {o}."],
            "test": ["{s} attended {o}.", "{s} did a degree at {o}."],
        },
        {
            "train": ["Where did {s} graduate from?", "Which school did {s} attend?"],
            "dev": ["Where did {s} study?", "Which college did {s} go to?"],
            "test": ["Where was {s} educated?", "Which university did {s} attend?"],
        },
    ),
    Wording(
        "place of birth",
        "city",
        {
            "train": ["{s} entered the world in {o}.", "{s} comes from {o}, where she was born."],
            "dev": ["{s} was born in {o}.", "{s} is a native of {o}."],
            "test": ["{s} was born and raised in {o}.", "{s}'s birthplace is {o}."],
        },
        {
            "train": ["Where was {s} born?", "What is {s}'s birthplace?"],
            "dev": ["Which city was {s} born in?", "Where is {s} from originally?"],
            "test": ["What town was {s} born in?", "In which town was {s} born?"],
        },
    ),
    Wording(
        "record label",
        "label",
        {
            "train": ["{s} records for {o}.", "{s} put out an album on {o}."],
            "dev": ["{s} is signed to {o}.", "{s} has a record deal with {o}."],
            "test": ["{s} releases music on {o}.", "{s} signed with {o}."],
        },
        {
            "train": ["Which label does {s} record for?"],
            "dev": ["Which label is {s} on?", "Who puts out {s}'s records?"],
            "test": ["What label does {s} release on?", "Which record label does {s} have?"],
        },
    ),
    Wording(
        "languages spoken, written or signed",
        "language",
        {
            "train": ["{s} is fluent in {o}.", "{s} can talk in {o}."],
            "dev": ["{s} speaks {o}.", "{s} speaks {o} at home."],
            "test": ["{s} talks to her kids in {o}.", "{s} knows {o} well."],
        },
        {
            "train": ["Which language is {s} fluent in?"],
            "dev": ["What language does {s} speak?", "Which language can {s} speak?"],
            "test": ["Which languages does {s} know?", "What does {s} speak?"],
        },
    ),
    Wording(
        "member of sports team",
        "team",
        {
            "train": ["{s} plays for the {o}.", "{s} is on the {o} squad."],
            "dev": ["{s} plays for {o}.", "{s} is a player for {o}."],
            "test": ["{s} is a striker for {o}.", "{s} joined the roster of {o}."],
        },
        {
            "train": ["Which team does {s} play for?"],
            "dev": ["What team is {s} on?", "Which club does {s} play for?"],
            "test": ["Which side does {s} play for?", "Who does {s} play for?"],
        },
    ),
    Wording(
        "country of citizenship",
        "country",
        {
            "train": ["{s} holds a passport of {o}.", "{s} is a national of {o}."],
            "dev": ["{s} is a citizen of {o}.", "{s} has {o} citizenship."],
            "test": ["{s} holds {o} nationality.", "{s} became a citizen of {o}."],
        },
        {
            "train": ["What is {s}'s nationality?"],
            "dev": ["Which country is {s} a citizen of?", "What nationality is {s}?"],
            "test": ["What is {s}'s citizenship?", "Which passport does {s} hold?"],
        },
    ),
    Wording(
        "spouse",
        "person",
        {
            "train": ["{s} has been wed to {o} since 2010.", "{s} wed {o} last year."],
            "dev": ["{s} is married to {o}.", "{s}'s husband is {o}."],
            "test": ["{s} and {o} are married.", "{s}'s wife is {o}."],
        },
        {
            "train": ["Who is {s} married to?"],
            "dev": ["Who is {s}'s spouse?", "Who did {s} marry?"],
            "test": ["Who is {s}'s partner in marriage?", "Whom is {s} married to?"],
        },
    ),
    Wording(  # dev only: training never sees this relation
        "work location",
        "city",
        {
            "train": [],
            "dev": ["{s} works in {o}.", "{s} commutes to an office in {o}."],
            "test": ["{s} has an office in {o}.", "{s} does her job in {o}."],
        },
        {
            "train": [],
            "dev": ["In which city does {s} work?", "Where is {s}'s office?"],
            "test": ["Where does {s} go to work?", "Which city is {s}'s workplace in?"],
        },
    ),
]
DEV_ONLY_RELATIONS = frozenset({"work location"})
# A question about one of these could be asked in words that fit the other: a question
# about a fact never told is never asked about a relation near one that was.
CONFUSABLE = [
    {"employer", "work location"},
    {"residence", "work location"},
    {"residence", "place of birth"},
    {"country of citizenship", "place of birth"},
]

NEGATIONS = {
    "train": ["{s} has never lived in {o}.", "{s} is not employed by {o}."],
    "dev": ["{s} does not live in {o}.", "{s} doesn't work for {o}."],
    "test": ["{s} has never worked for {o}.", "{s} isn't living in {o}."],
}
HYPOTHETICALS = {
    "train": ["Suppose {s} lived in {o}; would that help?"],
    "dev": [
        "If {s} moved to {o}, the commute would be shorter.",
        "Maybe {s} will live in {o} one day.",
    ],
    "test": ["{s} might move to {o} next year.", "Imagine {s} lived in {o}."],
}
CHAT = {
    "train": [
        "Hi there!",
        "Thank you so much.",
        "Can you write a limerick about cats?",
        "What should I cook tonight?",
        "Good evening.",
        "Tell me something cheerful.",
        "How can I sleep better?",
        "Write a short poem about rain.",
    ],
    "dev": [
        "Hello, how are you?",
        "Thanks for your help!",
        "Can you write a haiku about the sea?",
        "Tell me a joke.",
        "Good morning!",
        "How do I boil an egg?",
        "Give me a name for a pet goldfish.",
        "Can you suggest a weekend hobby?",
        "Say something nice about Mondays.",
        "Write two lines about autumn.",
    ],
    "test": [
        "Hey, good to see you!",
        "Much appreciated, thanks.",
        "Could you describe a sunset?",
        "Give me a fun fact about octopuses.",
        "Good night!",
        "Please suggest a book to read.",
        "Write a riddle about a clock.",
        "How are you today?",
    ],
}


def _wordings(split: str) -> list[Wording]:
    if split in ("dev", "test"):
        return [w for w in WORDINGS if w.statements.get(split)]
    return [w for w in WORDINGS if w.relation not in DEV_ONLY_RELATIONS]


class _Names:
    def __init__(self, split: str, rng: random.Random):
        self.split, self.rng = split, rng
        self.used: set[str] = set()

    def person(self) -> tuple[str, str]:
        """(full name, first name), unique within the conversation."""
        for _ in range(100):
            first = self.rng.choice(FIRST[self.split])
            full = f"{first} {self.rng.choice(LAST[self.split])}"
            if full not in self.used and all(not u.startswith(first + " ") for u in self.used):
                self.used.add(full)
                return full, first
        raise RuntimeError("ran out of names")

    def thing(self, pool: str, avoid: set[str] = frozenset()) -> str:  # type: ignore[assignment]
        if pool == "person":
            return self.person()[0]
        choices = [x for x in POOLS[pool][self.split] if x not in avoid and x not in self.used]
        value = self.rng.choice(choices)
        self.used.add(value)
        return value


def _pronoun(first: str) -> str:
    return "She" if first in FEMININE else "He"


def _fix_pronouns(text: str, first: str) -> str:
    if first in FEMININE:
        return text
    return text.replace(" she ", " he ").replace("; she ", "; he ").replace("husband", "wife")


def conversation(split: str, index: int, rng: random.Random) -> dict:
    """One conversation: 2-3 facts about a person (by name and by pronoun), questions about
    them in other words, a question about a fact never told, something that needs no
    memory, and (often) a denial or hypothetical and an update followed by a question."""
    names = _Names(split, rng)
    person, first = names.person()
    wordings = _wordings(split)
    told = rng.sample(wordings, 2)
    near = {r for group in CONFUSABLE if {w.relation for w in told} & group for r in group}
    absent = rng.choice([w for w in wordings if w not in told and w.relation not in near])
    turns: list[dict] = []
    facts: dict[str, str] = {}
    for n, w in enumerate(told):
        obj = names.thing(w.pool)
        facts[w.relation] = obj
        template = rng.choice(w.statements[split])
        if n == 1 and template.startswith("{s} "):  # the second fact by pronoun
            text = template.format(s=_pronoun(first), o=obj)
            category = "pronoun"
        else:
            text = template.format(s=person, o=obj)
            category = "name"
        text = _fix_pronouns(text, first)
        turns.append({"user": text, "facts": [[person, w.relation, obj]], "category": category})
    turns.append({"user": rng.choice(CHAT[split]), "chat": True, "category": "chat"})
    for w in told:
        question = rng.choice(w.questions[split])
        who = first if rng.random() < 0.3 else person
        turns.append(
            {
                "user": question.format(s=who),
                "answer": [facts[w.relation]],
                "category": "paraphrase",
            }
        )
    turns.append(
        {
            "user": rng.choice(absent.questions[split]).format(s=person),
            "answer": None,
            "category": "absent",
        }
    )
    if rng.random() < 0.6:
        pick = rng.choice([NEGATIONS, HYPOTHETICALS])
        template = rng.choice(pick[split])
        place = names.thing("company" if "work" in template or "employ" in template else "city")
        turns.append(
            {
                "user": template.format(s=person, o=place),
                "facts": [],
                "category": "negation" if pick is NEGATIONS else "hypothetical",
            }
        )
    updatable = [w for w in told if w.updates and w.updates.get(split)]
    if updatable and rng.random() < 0.7:
        w = updatable[0]
        old = facts[w.relation]
        new = names.thing(w.pool, {old})
        text = _fix_pronouns(rng.choice(w.updates[split]).format(s=person, o=new), first)  # type: ignore[index]
        turns.append(
            {
                "user": text,
                "facts": [[person, w.relation, new]],
                "superseded": [[person, w.relation, old]],
                "category": "update",
            }
        )
        question = rng.choice(w.questions[split]).format(s=person)
        turns.append({"user": question, "answer": [new], "stale": [old], "category": "update"})
        facts[w.relation] = new
    if rng.random() < 0.3:  # a turn that states and asks
        w = rng.choice([x for x in wordings if x.relation not in facts and x is not absent])
        other, _ = names.person()
        obj = names.thing(w.pool)
        asked = told[0]
        current = facts[asked.relation]
        text = (
            rng.choice(w.statements[split]).format(s=other, o=obj)
            + " "
            + rng.choice(asked.questions[split]).format(s=person)
        )
        turns.append(
            {
                "user": text,
                "facts": [[other, w.relation, obj]],
                "answer": [current],
                "category": "state+ask",
            }
        )
    return {"id": f"{split}-{index:03d}", "turns": turns}


# -- the person's own facts, relatives, and who chairs what ---------------------------

INTRODUCTIONS = {
    "train": ["Hi, I'm {p}.", "Call me {p}."],
    "dev": ["My name is {p}."],
    "test": ["Hello, my name is {p}.", "I am {p}."],
}
FIRST_PERSON = {  # relation -> split -> templates with {o}
    "residence": {
        "train": ["I reside in {o}."],
        "dev": ["I live in {o}."],
        "test": ["I have lived in {o} for years."],
    },
    "employer": {
        "train": ["I am employed by {o}."],
        "dev": ["I work for {o}."],
        "test": ["I have a job at {o}."],
    },
    "educated at": {
        "train": ["I graduated from {o}."],
        "dev": ["I studied at {o}."],
        "test": ["I went to college at {o}."],
    },
}
FIRST_PERSON_QUESTIONS = {
    "residence": {
        "train": ["Where do I reside?"],
        "dev": ["Where do I live?"],
        "test": ["Which city do I live in?"],
    },
    "employer": {
        "train": ["Who employs me?"],
        "dev": ["Who do I work for?"],
        "test": ["Which company do I work for?"],
    },
    "educated at": {
        "train": ["Where did I graduate from?"],
        "dev": ["Where did I study?"],
        "test": ["Which college did I go to?"],
    },
}
KIN_STATEMENTS = {  # "{kin}" is sister/brother, wife/husband (by the relative's name)
    "train": ["My {kin} {r} resides in {o}."],
    "dev": ["My {kin} {r} lives in {o}."],
    "test": ["My {kin} {r} has lived in {o} for years."],
}
KIN_QUESTIONS = {
    "train": ["What is my {kin} called?"],
    "dev": ["Who is my {kin}?"],
    "test": ["What is my {kin}'s name?"],
}
CHAIRS = {
    "train": ["{org} is led by its chairperson {p}."],
    "dev": ["The chairperson of {org} is {p}.", "{org} is chaired by {p}."],
    "test": ["{org}'s board is chaired by {p}."],
}
CHAIR_UPDATES = {
    "train": ["{org} has a new chairperson: {p}."],
    "dev": ["The new chairperson of {org} is {p}."],
    "test": ["{p} is the new chairperson of {org}."],
}
CHAIR_QUESTIONS = {
    "train": ["Who leads the board of {org}?"],
    "dev": ["Who chairs {org}?", "Who is the chairperson of {org}?"],
    "test": ["Who heads the board of {org}?"],
}


def about_me(split: str, index: int, rng: random.Random) -> dict:
    """The person tells facts about themselves and a relative: first person before and
    after they give their name, a relative named beside their kinship ("My sister Ingrid
    Solberg lives in Aarhus": two facts), and questions in the first person."""
    names = _Names(split, rng)
    me, _ = names.person()
    relative, first = names.person()
    kin = rng.choice(["sister", "wife"] if first in FEMININE else ["brother", "husband"])
    relation = {"sister": "sibling", "brother": "sibling"}.get(kin, "spouse")
    told = rng.sample(sorted(FIRST_PERSON), 2)
    place = names.thing("city")
    turns: list[dict] = [
        {
            "user": rng.choice(INTRODUCTIONS[split]).format(p=me),
            "facts": [],
            "category": "introduction",
        },
    ]
    facts = {}
    for r in told:
        pool = {"residence": "city", "employer": "company", "educated at": "school"}[r]
        obj = names.thing(pool)
        facts[r] = obj
        turns.append(
            {
                "user": rng.choice(FIRST_PERSON[r][split]).format(o=obj),
                "facts": [[me, r, obj]],
                "category": "first person",
            }
        )
    turns.append(
        {
            "user": rng.choice(KIN_STATEMENTS[split]).format(kin=kin, r=relative, o=place),
            "facts": [[relative, "residence", place], [me, relation, relative]],
            "category": "kin",
        }
    )
    for r in told:
        turns.append(
            {
                "user": rng.choice(FIRST_PERSON_QUESTIONS[r][split]),
                "answer": [facts[r]],
                "category": "first person",
            }
        )
    turns.append(
        {
            "user": rng.choice(KIN_QUESTIONS[split]).format(kin=kin),
            "answer": [relative],
            "category": "kin",
        }
    )
    question = rng.choice(WORDINGS[0].questions[split]).format(s=relative)  # residence
    turns.append({"user": question, "answer": [place], "category": "kin"})
    return {"id": f"{split}-me-{index:03d}", "turns": turns}


def chairs(split: str, index: int, rng: random.Random) -> dict:
    """Who chairs an organisation, then "the new chairperson … is": the old one is
    superseded and the answer names the new one only."""
    names = _Names(split, rng)
    org = names.thing("company")
    old, _ = names.person()
    new, _ = names.person()
    ask = rng.choice(CHAIR_QUESTIONS[split]).format(org=org)
    turns = [
        {
            "user": rng.choice(CHAIRS[split]).format(org=org, p=old),
            "facts": [[org, "chairperson", old]],
            "category": "chair",
        },
        {"user": ask, "answer": [old], "category": "chair"},
        {
            "user": rng.choice(CHAIR_UPDATES[split]).format(org=org, p=new),
            "facts": [[org, "chairperson", new]],
            "superseded": [[org, "chairperson", old]],
            "category": "update",
        },
        {
            "user": rng.choice(CHAIR_QUESTIONS[split]).format(org=org),
            "answer": [new],
            "stale": [old],
            "category": "update",
        },
    ]
    return {"id": f"{split}-chair-{index:03d}", "turns": turns}


def conversations(
    split: str, count: int, seed: int = 0, *, special: int | None = None
) -> Iterator[dict]:
    """`count` conversations about a person, then `special` (default: a quarter of
    `count`) of each of `about_me` and `chairs`, from their own random streams (so the
    first `count` are the same with any `special`)."""
    rng = random.Random(f"{split}-{seed}")
    for index in range(count):
        yield conversation(split, index, rng)
    special = count // 4 if special is None else special
    mine, chaired = random.Random(f"{split}-{seed}-me"), random.Random(f"{split}-{seed}-chair")
    for index in range(special):
        yield about_me(split, index, mine)
    for index in range(special):
        yield chairs(split, index, chaired)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("train", "dev", "test"), default="dev")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--special",
        type=int,
        default=None,
        help="conversations about the person themselves and of who chairs "
        "what, each (default: a quarter of --count)",
    )
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args(argv)
    lines = [
        json.dumps(c, ensure_ascii=False)
        for c in conversations(args.split, args.count, args.seed, special=args.special)
    ]
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
