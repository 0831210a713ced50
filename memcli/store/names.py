"""Entity and relation names: what is allowed, and how names are matched.

Names are matched case- and whitespace-insensitively (`key`), and keep the first
spelling seen. A name may not contain what would corrupt a MemLLM command. The
delimiters, the matching key and the delimiter rule live in `memcli.syntax`, shared with
the protocol.
"""

from __future__ import annotations

import re
import unicodedata

from memcli import syntax

MAX_NAME_LENGTH = 256
MAX_SOURCE_LENGTH = 4096
FORBIDDEN = syntax.DELIMITERS
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Bidirectional embeddings, overrides, isolates and marks: they reorder what a person
# reads ("evil\u202egpj.exe" shows as "evilexe.jpg").
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Letters and symbols that draw nothing (Hangul fillers, the braille blank).
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_UNSEEN_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Mn", "Me"})


key = syntax.key  # NFC, case-folded, runs of whitespace as one space


def name_problem(name: str) -> str | None:
    """Why `name` cannot be stored, or None when it is fine."""
    if not name or not name.strip():
        return "is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters ({len(name)})"
    if not (name.isascii() and name.isprintable()):  # printable ASCII needs none of these
        if _CONTROL.search(name):
            return "contains a control character or newline"
        bidi = _BIDI.search(name)
        if bidi:
            return f"contains U+{ord(bidi.group()):04X}, a bidirectional control that reorders text"
        if not any(_visible(c) for c in name):
            return "has no visible character"
    return syntax.delimiter_problem(name)


def _visible(c: str) -> bool:
    return c not in _BLANK and unicodedata.category(c) not in _UNSEEN_CATEGORIES


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def source_problem(source: object) -> str | None:
    """Why `source` cannot be stored as a fact's source, or None when it is fine: a
    source is printed in listings, so it may hold no control character (an escape
    sequence would drive the terminal) and no bidirectional control."""
    if not isinstance(source, str):
        return "is not text"
    if len(source) > MAX_SOURCE_LENGTH:
        return f"is longer than {MAX_SOURCE_LENGTH} characters ({len(source)})"
    if _CONTROL.search(source):
        return "contains a control character, escape sequence or newline"
    bidi = _BIDI.search(source)
    if bidi:
        return f"contains U+{ord(bidi.group()):04X}, a bidirectional control that reorders text"
    return None


def clean(name: str) -> str:
    """The spelling to store: surrounding whitespace removed, inner runs kept as typed."""
    return unicodedata.normalize("NFC", name.strip())
