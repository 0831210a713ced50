"""Entity and relation names: what is allowed, and how names are matched.

Names are matched case- and whitespace-insensitively (`key`), and keep the first
spelling seen. A name may not contain what would corrupt a MemLLM command.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_LENGTH = 256
FORBIDDEN = (">>", ";", "({", "})", "-->")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_FORBIDDEN = re.compile("|".join(re.escape(f) for f in FORBIDDEN))


def key(name: str) -> str:
    """The matching key of a name: NFC, case-folded, runs of whitespace as one space."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def name_problem(name: str) -> str | None:
    """Why `name` cannot be stored, or None when it is fine."""
    if not name or not name.strip():
        return "is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters ({len(name)})"
    if _CONTROL.search(name):
        return "contains a control character or newline"
    found = _FORBIDDEN.search(name)
    if found:
        return f"contains {found.group()!r}, a memory-command delimiter"
    stripped = name.strip()
    for tail in (">", "--"):
        if stripped.endswith(tail):
            return f"ends with {tail!r}, which would run into a memory-command delimiter"
    return None


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def clean(name: str) -> str:
    """The spelling to store: surrounding whitespace removed, inner runs kept as typed."""
    return unicodedata.normalize("NFC", name.strip())
