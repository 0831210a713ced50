"""Writing what people say in a chat: which sentences state facts, who "she" is, which
relation a wording means, which old fact an update replaces, and the acknowledgement.

No model here: these are the checks around the model's `MEM_WRITE` calls (see
`memcli.repl.conversation`, which runs them for each turn).

- `kind_of(sentence)`: "question", "chat" (greetings, thanks, requests), "negation",
  "hypothetical" — none of which store anything — or "statement".
- `resolve(sentence, context)`: pronouns, possessives and first person replaced by the
  entity they refer to in the recent conversation ("She teaches at …" → "Dana Whitfield
  teaches at …"), so the write names the person, never the pronoun. The names it put in
  are the *context entities* the write grammar may use besides the sentence's own spans.
- `is_update(sentence)`: the words say an old value stopped ("moved to", "now works
  for", "no longer", "the new chairperson"), so the new fact supersedes the subject's
  current one of that relation even when the relation is multi-valued.
- `better_relation(...)`: the model's relation checked against the meaning of the words
  between subject and object ("lives in" → `residence`); replaced when another relation
  is clearly closer.
- `acknowledge(...)`: a short, true sentence built from what was stored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from memcli.store import names
from memcli.syntax import fact_text

_WORDS = re.compile(r"[\w'’-]+")

GREETING = re.compile(
    r"^\s*(?:hi|hello|hey|good (?:morning|afternoon|evening|night)|thanks?|thank you|"
    r"cheers|bye|goodbye|see you|ok(?:ay)?|great|cool|nice|sorry|please|yes|no)\b",
    re.IGNORECASE,
)
REQUEST = re.compile(
    r"^\s*(?:(?:can|could|would|will) you|please|write|tell me|give me|say|suggest|"
    r"help me|show me|explain|describe|let's|let us|make|create|compose|list|translate|"
    r"summari[sz]e|recommend)\b",
    re.IGNORECASE,
)
QUESTION_START = re.compile(
    r"^\s*(?:who|whom|whose|what|which|where|when|why|how|is|are|was|were|do|does|did|"
    r"has|have|had|can|could|will|would|should)\b",
    re.IGNORECASE,
)
WH_QUESTION = re.compile(
    r"^\s*(?:who|whom|whose|what|which|where|when|why|how)\s+(?:is|are|was|were|do|does|"
    r"did|has|have|had|can|could|will|would|should)\b",
    re.IGNORECASE,
)
NEGATION = re.compile(r"n't\b|n’t\b|\b(?:not|never|no one|nobody|neither|nor)\b", re.IGNORECASE)
HYPOTHETICAL = re.compile(
    r"\b(?:if|suppose|supposing|imagine|maybe|perhaps|might|would|could|wish|unless|"
    r"what if|probably|possibly)\b",
    re.IGNORECASE,
)
UPDATE = re.compile(
    r"\b(?:moved|moves|relocated|relocates|now|no longer|not any ?more|anymore|new|"
    r"switched|joined|changed|left|has become|became|took over|replaced)\b",
    re.IGNORECASE,
)
STOPPED = re.compile(r"\b(?:no longer|not any ?more|anymore)\b", re.IGNORECASE)

FEMININE = frozenset("she her hers herself".split())
MASCULINE = frozenset("he him his himself".split())
NEUTER = frozenset("it its itself".split())
PLURAL = frozenset("they them their theirs".split())
FIRST_PERSON = frozenset("i me my mine myself".split())
PRONOUNS = FEMININE | MASCULINE | NEUTER | PLURAL | FIRST_PERSON


SMALL_TALK = re.compile(
    r"\b(?:how are you|how's it going|how is it going|what's up|how do you do|"
    r"who are you|what can you do|are you there)\b",
    re.IGNORECASE,
)


def kind_of(sentence: str) -> str:
    text = sentence.strip()
    if SMALL_TALK.search(text) or (GREETING.match(text) and len(_WORDS.findall(text)) <= 6):
        return "chat"
    if text.rstrip("\"'”’)").endswith("?"):
        return "chat" if REQUEST.match(text) else "question"
    if REQUEST.match(text):
        return "chat"
    if HYPOTHETICAL.search(text):
        return "hypothetical"
    if NEGATION.search(text) and not _states_after_negation(text):
        return "negation"
    if WH_QUESTION.match(text):  # "who is Dana married to" without the question mark
        return "question"
    return "statement"


def _states_after_negation(text: str) -> bool:
    """ "Dana no longer works there; she joined Meridian." states the second clause."""
    return bool(STOPPED.search(text)) and bool(re.search(r"[;,]| and | but ", text))


def stated_part(sentence: str) -> str:
    """The part of a sentence that states something: a clause that says an old value
    stopped ("no longer works there") is dropped, the rest kept."""
    if not STOPPED.search(sentence):
        return sentence
    clauses = re.split(r"\s*(?:;|, and |, but | and | but |,)\s*", sentence.strip().rstrip("."))
    kept = [c for c in clauses if c and not STOPPED.search(c)]
    return (". ".join(kept) + ".") if kept else ""


def is_update(sentence: str) -> bool:
    return bool(UPDATE.search(sentence))


# -- context entities and pronouns --------------------------------------------------------


@dataclass
class Context:
    """What the conversation has named so far, most recent last."""

    people: list[str] = field(default_factory=list)
    things: list[str] = field(default_factory=list)
    user: str | None = None  # the person's own name, once they said it

    def saw(self, subject: str, obj: str | None = None, *, person: bool = True) -> None:
        target = self.people if person else self.things
        if subject in target:
            target.remove(subject)
        target.append(subject)
        if obj is not None:
            if obj in self.things:
                self.things.remove(obj)
            self.things.append(obj)

    def saw_thing(self, name: str) -> None:
        if name in self.things:
            self.things.remove(name)
        if name not in self.people:
            self.things.append(name)

    def entities(self) -> list[str]:
        """Names the write grammar may use besides the sentence's spans."""
        found = [*self.people[-3:], *self.things[-3:]]
        if self.user:
            found.append(self.user)
        return list(dict.fromkeys(found))


USER = "the user"
_NAME_IS = re.compile(
    r"\b(?:my name is|i am called|call me|i'm|i am)\s+([A-Z][\w'’-]+(?:\s+[A-Z][\w'’-]+)*)"
)


def names_in(sentence: str) -> list[str]:
    """Runs of capitalised words (not the sentence's first word alone, unless two or more
    words), as people's and places' names."""
    found = []
    for match in re.finditer(r"[A-Z][\w'’-]*(?:\s+(?:of\s+|de\s+|van\s+)?[A-Z][\w'’-]*)*",
                             sentence):
        name = re.sub(r"['’]s$", "", match.group())
        first_word = match.start() == len(sentence) - len(sentence.lstrip())
        if first_word and " " not in name and (
            name.lower() in PRONOUNS or QUESTION_START.match(name) or name in ("The", "A")
        ):
            continue
        if name.lower() in PRONOUNS or name in ("I",):
            continue
        found.append(name)
    return found


def resolve(sentence: str, context: Context) -> tuple[str, list[str]]:
    """`sentence` with pronouns and first person replaced by whom they refer to, and the
    names put in. A pronoun with no one to refer to stays (its facts are then dropped,
    see `names_pronoun`)."""
    used: list[str] = []
    match = _NAME_IS.search(sentence)
    if match:
        context.user = match.group(1)

    def person() -> str | None:
        return context.people[-1] if context.people else None

    def swap(m: re.Match[str]) -> str:
        word = m.group()
        low = word.lower()
        target: str | None = None
        possessive = low in ("his", "her", "its", "their", "my", "hers", "theirs", "mine")
        if low in FEMININE or low in MASCULINE:
            target = person()
        elif low in NEUTER:
            target = context.things[-1] if context.things else None
        elif low in PLURAL:
            target = person()
        elif low in FIRST_PERSON:
            target = context.user or USER
        if target is None:
            return word
        used.append(target)
        if low == "her":  # object or possessive: possessive when a noun follows
            after = sentence[m.end():]
            possessive = bool(re.match(r"\s+(?!and\b|or\b|to\b|in\b|at\b)[a-z]", after))
        return f"{target}'s" if possessive else target

    resolved = re.sub(r"\b(?:she|he|her|him|his|hers|it|its|they|them|their|i|me|my)\b",
                      swap, sentence, flags=re.IGNORECASE)
    # "Dana Whitfield no longer works there" keeps no meaning for "there"; leave it.
    return resolved, list(dict.fromkeys(used))


def names_pronoun(name: str) -> bool:
    """Whether a written entity is (or starts or ends with) a pronoun or determiner — never
    an entity to store."""
    words = [w.lower() for w in _WORDS.findall(name)]
    if not words:
        return True
    bad = PRONOUNS | {"this", "that", "these", "those", "there", "here", "who", "which",
                      "what", "someone", "something"}
    if all(w in bad for w in words):
        return True
    return words[0] in (PRONOUNS - {"i"}) or words[-1] in bad | {"the", "a", "an", "of",
                                                                  "at", "in", "to", "for",
                                                                  "and", "with", "on"}


# -- relations ----------------------------------------------------------------------------


# Words that say a value changed, put back as the plain statement of the new value, so
# that the change's wording does not pull the relation elsewhere ("moved to" is about
# where someone lives).
_CHANGE_WORDS = [
    (re.compile(r"\b(?:has |have |had |just |recently )*(?:moved|relocated|moving)"
                r"(?: house| back)? to\b", re.I), "lives in"),
    (re.compile(r"\b(?:has |have |just |recently )*(?:joined|switched to)\b", re.I),
     "works for"),
    (re.compile(r"\b(?:now|these days|nowadays|currently|new)\b\s*", re.I), ""),
]


def plain_wording(text: str) -> str:
    for pattern, replacement in _CHANGE_WORDS:
        text = pattern.sub(replacement, text)
    return re.sub(r"\s{2,}", " ", text)


def predicate(sentence: str, subject: str, obj: str) -> str:
    """The sentence as a statement about "someone" and "something" ("Dana lives in Oslo
    now" → "someone lives in something"): the relation is what the other words say,
    and the names' own meaning only adds noise. The whole sentence when the subject or
    object is not in it."""
    low = sentence.lower()
    s_at, o_at = low.find(subject.lower()), low.find(obj.lower())
    if s_at < 0 or o_at < 0 or not subject or not obj:
        return plain_wording(sentence)
    spans = sorted([(s_at, s_at + len(subject), "someone"), (o_at, o_at + len(obj), "something")])
    if spans[0][1] > spans[1][0]:  # overlapping names
        return plain_wording(sentence)
    text = sentence[: spans[0][0]] + spans[0][2] + sentence[spans[0][1]: spans[1][0]] + \
        spans[1][2] + sentence[spans[1][1]:]
    text = re.sub(r"\s+(?:last|this|next)\s+(?:week|month|year|spring|summer|autumn|winter)\b"
                  r"|\s+(?:yesterday|today|recently)\b", "", text.strip().rstrip(".!"))
    return plain_wording(text)


def checked_triples(
    resolved: str, triples: Sequence[tuple[str, str, str]], relations: Sequence[str],
    embedder: object | None = None,
) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The triples a statement's write call proposed, made sound: none naming a pronoun
    or a word that is no name, subject and object the sentence's way round (its first
    name is the subject), partial names completed, the relation checked against the
    wording (`better_relation`). When the call proposed nothing usable and the sentence
    is of the form NAME … NAME, that one triple (departure from MemLLM: the bundled
    model often writes nothing for everyday sentences; only for a sentence about a
person). Returns the triples and why
    others were left out."""
    found = names_in(resolved)
    subject = found[0] if found and resolved.lstrip().startswith(found[0]) else None
    out: list[tuple[str, str, str]] = []
    skipped: list[str] = []

    def complete(span: str) -> str:
        for name in found:
            if span != name and f" {names.key(span)} " in f" {names.key(name)} ":
                return name
        return span

    for s, r, o in triples:
        if names_pronoun(s) or names_pronoun(o):
            skipped.append(f"{fact_text(s, r, o)} names no one")
            continue
        if not (_is_name(s) and _is_name(o)):
            continue  # "Valencia Herons >> league >> plays": not a fact about names
        s, o = complete(s), complete(o)
        if subject and names.key(o) == names.key(subject) and names.key(s) != names.key(
                subject):
            s, o = o, s
        if names.key(s) == names.key(o):
            continue
        relation = better_relation(resolved, s, r, o, relations, embedder)
        if relation is None:
            skipped.append(f"no relation I know fits {s} and {o}")
            continue
        if subject and names.key(s) != names.key(subject) and any(
            names.key(x[0]) == names.key(subject) for x in out
        ):
            continue
        out.append((s, relation, o))
    if subject and any(names.key(x[0]) == names.key(subject) for x in out):
        out = [x for x in out if names.key(x[0]) == names.key(subject)]
    if not out and subject and len(found) >= 2 and is_person(subject, embedder):
        obj = found[-1]
        relation = better_relation(resolved, subject, "", obj, relations, embedder)
        if relation is not None:
            out.append((subject, relation, obj))
    return list(dict.fromkeys(out)), skipped


def _is_name(span: str) -> bool:
    """A name: it has a capitalised word or a digit (or is the user)."""
    return span == USER or bool(re.search(r"(?:^|\s)[A-Z0-9]|\d", span))


# Relations whose subject Wikidata constrains to people (subject type: human).
HUMAN_RELATIONS = frozenset({
    "residence", "employer", "educated at", "spouse", "sibling", "child", "father",
    "mother", "languages spoken, written or signed", "record label", "member of sports team",
    "place of birth", "place of death", "date of birth", "date of death",
    "country of citizenship", "work location", "member of political party", "position held",
    "religion", "ethnic group", "notable work", "award received", "military branch",
})
PERSON_MIN = 0.18


def is_person(name: str, embedder: object | None = None) -> bool:
    """Whether a name is a person's, by its meaning: similarity to "a person's name"
    above 0.18 (on 14 people's names 0.22-0.34, "the user" 0.47; on 9 places, companies
    and teams 0.05-0.15)."""
    from memcli.runtime.embeddings import shared_embedder

    if name == USER:
        return True
    model = embedder or shared_embedder()
    return float(model.similarity(name, ["a person's name"], keep_others=True)[0]) > PERSON_MIN  # type: ignore[attr-defined]


KEEP_MARGIN = 0.03  # the model's relation stays when this close to the best
MIN_FIT = 0.3  # below this no known relation fits the wording: the fact is left out


def better_relation(
    sentence: str, subject: str, relation: str, obj: str, relations: Sequence[str],
    embedder: object | None = None, margin: float = KEEP_MARGIN, min_fit: float = MIN_FIT,
) -> str | None:
    """The relation for how the sentence relates subject and object: the closest in
    meaning (name or gloss) to the words between them, unless the model's own choice is
    within `margin` of it; None when nothing comes within `min_fit` (the bundled 135M
    model writes `country of citizenship` for most everyday sentences, so its choice is
    only a tie-breaker)."""
    from memcli.runtime.embeddings import rank_relations

    text = predicate(sentence, subject, obj)
    ranked = rank_relations(text, list(relations), embedder, glosses=True)  # type: ignore[arg-type]
    scores = dict(ranked)
    best, best_score = ranked[0]
    if relation and best not in HUMAN_RELATIONS and not is_person(subject, embedder):
        # Wordings about people are what the check was measured on; about places and
        # things (Re-DocRED's "Lake Geneva is in France") the model's choice is better.
        # A person: the wording's closest relation is one only people have, or the
        # name reads as a person's.
        return relation
    if best_score < min_fit:
        return None
    if scores.get(relation, -1.0) >= best_score - margin:
        return relation
    return best


# -- acknowledgement ----------------------------------------------------------------------


def acknowledge(stored: Sequence[tuple[str, str, str]], replaced: dict[int, str],
                skipped: Sequence[str], *, memory: bool = True) -> str:
    """A short, true acknowledgement of a statement turn: what was stored (and which old
    values it replaced), or that nothing was, and why."""
    if not memory:
        return "Memory is off, so I did not store that."
    if not stored:
        if skipped:
            return f"I stored nothing: {skipped[0]}."
        return "I found no fact to store in that."
    parts = []
    for index, (subject, relation, obj) in enumerate(stored):
        old = replaced.get(index)
        part = f"{subject} - {relation}: {obj}"
        if old:
            part += f" (was {old})"
        parts.append(part)
    return "Noted: " + "; ".join(parts) + "."


# -- a turn's plan ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sentence:
    text: str  # as the person wrote it
    kind: str  # see `kind_of`
    resolved: str  # pronouns and first person replaced (statements and questions)
    update: bool = False  # a statement that says an old value stopped


@dataclass(frozen=True)
class TurnPlan:
    sentences: tuple[Sentence, ...]

    @property
    def statements(self) -> list[Sentence]:
        return [s for s in self.sentences if s.kind == "statement" and s.resolved]

    @property
    def questions(self) -> list[Sentence]:
        return [s for s in self.sentences if s.kind == "question"]

    @property
    def skipped(self) -> list[Sentence]:
        """Sentences that look like statements but state nothing to keep."""
        return [s for s in self.sentences if s.kind in ("negation", "hypothetical")]

    @property
    def needs_reply(self) -> bool:
        """Whether the turn gets an answer (a question, or something to chat about), not
        only an acknowledgement of what it stated."""
        return bool(self.questions) or any(s.kind == "chat" for s in self.sentences) or not (
            self.statements or self.skipped
        )


SKIP_REASONS = {
    "negation": "it says what is not so",
    "hypothetical": "it says what might be, not what is",
}


def plan_turn(message: str, context: Context) -> TurnPlan:
    """Split a message into sentences, say what each is, and resolve pronouns in order
    (a name in one sentence is what "she" means in the next). Updates `context`."""
    from memcli.runtime.sentences import split_sentences

    planned = []
    for text, _line in split_sentences(message):
        kind = kind_of(text)
        resolved = text
        if kind in ("statement", "question"):
            part = stated_part(text) if kind == "statement" else text
            resolved, _used = resolve(part, context)
        found = names_in(resolved)
        if found and kind in ("statement", "question", "negation", "hypothetical"):
            # The person a sentence is about: the name it starts with (a statement's
            # subject), else the first name a question asks about.
            starts = resolved.lstrip().startswith(found[0])
            if starts or kind == "question":
                context.saw(found[0])
        planned.append(Sentence(text, kind, resolved.strip(), kind == "statement"
                                and is_update(text)))
    return TurnPlan(tuple(planned))
