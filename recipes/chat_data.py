"""Short conversations of everyday language for `memcli eval chat` (and for training).

Each conversation is one JSON line in the format `memcli.evaluation.chat` documents:
people state facts in their own words (names, pronouns, first person), ask about them in
other words, change them ("moved to", "now works for"), deny or imagine things (nothing
to store), ask about facts never told (the answer is "I don't know"), and say things
that need no memory at all (greetings, thanks, requests).

Two splits that share nothing but the relation names: `train` and `dev` draw their
people, places and organisations from disjoint pools, their statement and question
wordings from disjoint templates, and `dev` also has relations that `train` never uses
(`DEV_ONLY_RELATIONS`). Deterministic for a seed.

    python -m recipes.chat_data --split dev --count 40 -o recipes/data/chat_dev.jsonl
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
    "train": ["Dana", "Rolf", "Ingrid", "Marta", "Jonas", "Priya", "Kofi", "Elena", "Tomas",
              "Yuki", "Amara", "Lars", "Sofia", "Mateo", "Hana", "Oskar", "Leila", "Viktor"],
    "dev": ["Astrid", "Malik", "Sigrid", "Rafael", "Teodor", "Mirela", "Kenji", "Olu",
            "Freya", "Anton", "Zainab", "Henrik", "Carmen", "Idris", "Linnea", "Basil"],
}
LAST = {
    "train": ["Whitfield", "Aasen", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Haugen",
              "Petrov", "Silva", "Brennan", "Quist", "Adeyemi"],
    "dev": ["Solberg", "Castellanos", "Mwangi", "Fairbanks", "Oyelaran", "Kowalczyk",
            "Thorsen", "Delacroix", "Hartmann", "Nakamura", "Ferreira", "Lundgren"],
}
# She/he for each first name (for pronoun statements).
FEMININE = {"Dana", "Ingrid", "Marta", "Priya", "Elena", "Yuki", "Amara", "Sofia", "Hana",
            "Leila", "Astrid", "Sigrid", "Mirela", "Freya", "Zainab", "Carmen", "Linnea"}

POOLS = {
    "city": {
        "train": ["Oslo", "Bergen", "Hamar", "Lyon", "Porto", "Kyoto", "Nairobi", "Tampere",
                  "Graz", "Leeds"],
        "dev": ["Tromsø", "Aarhus", "Valencia", "Gdansk", "Kumasi", "Sapporo", "Trieste",
                "Halifax", "Dunedin", "Uppsala"],
    },
    "company": {
        "train": ["Arcwise Labs", "Bryne Foods", "Northwind Shipping", "Helix Bank",
                  "Tidewater Games", "Quarry Systems"],
        "dev": ["Fjordline Robotics", "Copperleaf Studio", "Meridian Freight", "Solace Health",
                "Brightwater Energy", "Granite Peak Software"],
    },
    "school": {
        "train": ["Nordhavn Academy", "Westbrook College", "Lakeside Institute"],
        "dev": ["Kestrel University", "Harbourview College", "Pinecrest Academy"],
    },
    "label": {
        "train": ["Blue Harbor Records", "Northstar Music"],
        "dev": ["Silverline Records", "Redwood Sound"],
    },
    "language": {
        "train": ["Spanish", "Japanese", "Finnish", "Hindi"],
        "dev": ["Portuguese", "Swahili", "Polish", "Korean"],
    },
    "team": {
        "train": ["Hamar Falcons", "Lyon Comets"],
        "dev": ["Aarhus Otters", "Valencia Herons"],
    },
    "country": {
        "train": ["Norway", "Kenya", "France", "Japan"],
        "dev": ["Ghana", "Canada", "Poland", "Chile"],
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
        "residence", "city",
        {"train": ["{s} resides in {o}.", "{s} has a house in {o}.", "{s} makes a home in {o}."],
         "dev": ["{s} lives in {o}.", "{s}'s home is in {o}.", "{s} is based in {o}."]},
        {"train": ["In which city does {s} reside?", "Where's {s}'s house?"],
         "dev": ["Where does {s} live?", "Which town is {s}'s home?",
                 "Where is {s} based these days?"]},
        {"train": ["{s} moved house to {o}.", "{s} relocated to {o} this spring."],
         "dev": ["{s} moved to {o} last week.", "{s} has just moved to {o}."]},
    ),
    Wording(
        "employer", "company",
        {"train": ["{s} is employed by {o}.", "{s} has a job at {o}."],
         "dev": ["{s} works for {o}.", "{s} works at {o}."]},
        {"train": ["Who employs {s}?", "Which firm is {s} employed by?"],
         "dev": ["Who does {s} work for?", "Where does {s} work?",
                 "Which company is {s} with?"]},
        {"train": ["{s} switched jobs and is employed by {o} now.", "{s} took a job at {o}."],
         "dev": ["{s} now works for {o}.", "{s} no longer works there; she joined {o}."]},
    ),
    Wording(
        "educated at", "school",
        {"train": ["{s} graduated from {o}.", "{s} was a student at {o}."],
         "dev": ["{s} studied at {o}.", "{s} went to school at {o}."]},
        {"train": ["Where did {s} graduate from?", "Which school did {s} attend?"],
         "dev": ["Where did {s} study?", "Which college did {s} go to?"]},
    ),
    Wording(
        "place of birth", "city",
        {"train": ["{s} was born in {o}.", "{s} comes from {o}, where she was born."],
         "dev": ["{s} was born in {o}.", "{s} is a native of {o}."]},
        {"train": ["Where was {s} born?", "What is {s}'s birthplace?"],
         "dev": ["Which city was {s} born in?", "Where is {s} from originally?"]},
    ),
    Wording(
        "record label", "label",
        {"train": ["{s} records for {o}.", "{s} put out an album on {o}."],
         "dev": ["{s} is signed to {o}.", "{s} has a record deal with {o}."]},
        {"train": ["Which label does {s} record for?"],
         "dev": ["Which label is {s} on?", "Who puts out {s}'s records?"]},
    ),
    Wording(
        "languages spoken, written or signed", "language",
        {"train": ["{s} is fluent in {o}.", "{s} can talk in {o}."],
         "dev": ["{s} speaks {o}.", "{s} speaks {o} at home."]},
        {"train": ["Which language is {s} fluent in?"],
         "dev": ["What language does {s} speak?", "Which language can {s} speak?"]},
    ),
    Wording(
        "member of sports team", "team",
        {"train": ["{s} plays for the {o}.", "{s} is on the {o} squad."],
         "dev": ["{s} plays for {o}.", "{s} is a player for {o}."]},
        {"train": ["Which team does {s} play for?"],
         "dev": ["What team is {s} on?", "Which club does {s} play for?"]},
    ),
    Wording(
        "country of citizenship", "country",
        {"train": ["{s} holds a passport of {o}.", "{s} is a citizen of {o}."],
         "dev": ["{s} is a citizen of {o}.", "{s} has {o} citizenship."]},
        {"train": ["What is {s}'s nationality?"],
         "dev": ["Which country is {s} a citizen of?", "What nationality is {s}?"]},
    ),
    Wording(
        "spouse", "person",
        {"train": ["{s} is married to {o}.", "{s} wed {o} last year."],
         "dev": ["{s} is married to {o}.", "{s}'s husband is {o}."]},
        {"train": ["Who is {s} married to?"],
         "dev": ["Who is {s}'s spouse?", "Who did {s} marry?"]},
    ),
    Wording(  # dev only: training never sees this relation
        "work location", "city",
        {"train": [], "dev": ["{s} works in {o}.", "{s} commutes to an office in {o}."]},
        {"train": [], "dev": ["In which city does {s} work?", "Where is {s}'s office?"]},
    ),
]
DEV_ONLY_RELATIONS = frozenset({"work location"})
# A question about one of these could be asked in words that fit the other: a question
# about a fact never told is never asked about a relation near one that was.
CONFUSABLE = [{"employer", "work location"}, {"residence", "work location"},
              {"residence", "place of birth"}, {"country of citizenship", "place of birth"}]

NEGATIONS = {
    "train": ["{s} has never lived in {o}.", "{s} is not employed by {o}."],
    "dev": ["{s} does not live in {o}.", "{s} doesn't work for {o}."],
}
HYPOTHETICALS = {
    "train": ["Suppose {s} lived in {o}; would that help?"],
    "dev": ["If {s} moved to {o}, the commute would be shorter.",
            "Maybe {s} will live in {o} one day."],
}
CHAT = {
    "train": ["Hi there!", "Thank you so much.", "Can you write a limerick about cats?",
              "What should I cook tonight?", "Good evening.", "Tell me something cheerful.",
              "How can I sleep better?", "Write a short poem about rain."],
    "dev": ["Hello, how are you?", "Thanks for your help!",
            "Can you write a haiku about the sea?", "Tell me a joke.", "Good morning!",
            "How do I boil an egg?", "Give me a name for a pet goldfish.",
            "Can you suggest a weekend hobby?", "Say something nice about Mondays.",
            "Write two lines about autumn."],
}


def _wordings(split: str) -> list[Wording]:
    if split == "dev":
        return [w for w in WORDINGS if w.statements["dev"]]
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
        turns.append({"user": question.format(s=who), "answer": [facts[w.relation]],
                      "category": "paraphrase"})
    turns.append({"user": rng.choice(absent.questions[split]).format(s=person), "answer": None,
                  "category": "absent"})
    if rng.random() < 0.6:
        pick = rng.choice([NEGATIONS, HYPOTHETICALS])
        template = rng.choice(pick[split])
        place = names.thing("company" if "work" in template or "employ" in template else "city")
        turns.append({"user": template.format(s=person, o=place), "facts": [],
                      "category": "negation" if pick is NEGATIONS else "hypothetical"})
    updatable = [w for w in told if w.updates and w.updates.get(split)]
    if updatable and rng.random() < 0.7:
        w = updatable[0]
        old = facts[w.relation]
        new = names.thing(w.pool, {old})
        text = _fix_pronouns(rng.choice(w.updates[split]).format(s=person, o=new), first)  # type: ignore[index]
        turns.append({"user": text, "facts": [[person, w.relation, new]],
                      "superseded": [[person, w.relation, old]], "category": "update"})
        question = rng.choice(w.questions[split]).format(s=person)
        turns.append({"user": question, "answer": [new], "stale": [old], "category": "update"})
        facts[w.relation] = new
    if rng.random() < 0.3:  # a turn that states and asks
        w = rng.choice([x for x in wordings if x.relation not in facts and x is not absent])
        other, _ = names.person()
        obj = names.thing(w.pool)
        asked = told[0]
        current = facts[asked.relation]
        text = (rng.choice(w.statements[split]).format(s=other, o=obj) + " "
                + rng.choice(asked.questions[split]).format(s=person))
        turns.append({"user": text, "facts": [[other, w.relation, obj]], "answer": [current],
                      "category": "state+ask"})
    return {"id": f"{split}-{index:03d}", "turns": turns}


def conversations(split: str, count: int, seed: int = 0) -> Iterator[dict]:
    rng = random.Random(f"{split}-{seed}")
    for index in range(count):
        yield conversation(split, index, rng)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("train", "dev"), default="dev")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args(argv)
    lines = [json.dumps(c, ensure_ascii=False) for c in conversations(args.split, args.count,
                                                                       args.seed)]
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
