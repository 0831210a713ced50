"""The one home of the rules the memory commands impose on names, shared by the MemLLM
protocol (`memcli.protocol`) and the store (`memcli.store.names`), which may import
nothing else of memcli but `errors` and `paths`: this module imports nothing at all.

- the command delimiters (`({`, `})`, `-->`, `>>`, `;`) and the two endings that would run
  into one (`>`, `--`), with `delimiter_problem`;
- `key`, how names are matched (NFC, case-folded, runs of whitespace as one space);
- `fact_text`, how a fact is shown to people: `subject >> relation >> object`, and
  `update_text`, how a change of value is: `subject >> relation: old → new`.
"""

from __future__ import annotations

import unicodedata

OPEN = "({"
CLOSE = "})"
ARROW = "-->"
SEP = ">>"
ITEM_SEP = ";"
DELIMITERS = (OPEN, CLOSE, ARROW, SEP, ITEM_SEP)
# `a>` then `>>` reads `a>>>b` (leftmost: `a` / `>b`); `x--` then `>>` forms `-->`.
BAD_ENDINGS = (">", "--")


def delimiter_problem(name: str) -> str | None:
    """Why `name` would corrupt a memory command, or None when it cannot."""
    found = min(((name.find(d), d) for d in DELIMITERS if d in name), default=None)
    if found is not None:  # the leftmost one, as a reader meets them
        return f"contains {found[1]!r}, a memory-command delimiter"
    stripped = name.strip()
    for tail in BAD_ENDINGS:
        if stripped.endswith(tail):
            return f"ends with {tail!r}, which would run into a memory-command delimiter"
    return None


def key(name: str) -> str:
    """The matching key of a name: NFC, case-folded, runs of whitespace as one space."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def fact_text(subject: str, relation: str, obj: str) -> str:
    """A fact as people read it everywhere memcli shows one."""
    return f"{subject} {SEP} {relation} {SEP} {obj}"


def update_text(subject: str, relation: str, old: str, new: str) -> str:
    """A fact whose value changed, as people read it: `subject >> relation: old → new`."""
    return f"{subject} {SEP} {relation}: {old} → {new}"
