"""Splitting text into sentences for `ingest`, keeping each one's line number."""

from __future__ import annotations

import re

# A sentence ends at . ! or ? (optionally followed by a closing quote or bracket) before
# whitespace and an upper-case letter, digit or opening quote; or at a blank line.
_END = re.compile(r"(?<=[.!?])[\"'”’)\]]?\s+(?=[\"“'(\[]?[A-Z0-9À-ÖØ-Þ])")
_ABBREVIATIONS = (
    "Mr.",
    "Mrs.",
    "Ms.",
    "Dr.",
    "St.",
    "Jr.",
    "Sr.",
    "vs.",
    "e.g.",
    "i.e.",
    "U.S.",
    "Inc.",
    "Ltd.",
    "No.",
    "Prof.",
    "Gen.",
    "Col.",
    "Mt.",
)


def split_sentences(text: str) -> list[tuple[str, int]]:
    """(sentence, line number where it starts), in order; whitespace normalised."""
    out: list[tuple[str, int]] = []
    for block, line in _paragraphs(text):
        start = 0
        for match in _END.finditer(block):
            candidate = block[start : match.start()].strip()
            if candidate.endswith(_ABBREVIATIONS) or len(candidate) < 2:
                continue
            out.append((" ".join(candidate.split()), line + block.count("\n", 0, start)))
            start = match.end()
        rest = block[start:].strip()
        if rest:
            out.append((" ".join(rest.split()), line + block.count("\n", 0, start)))
    return out


def _paragraphs(text: str) -> list[tuple[str, int]]:
    blocks: list[tuple[str, int]] = []
    line = 1
    for block in re.split(r"(\n[ \t]*\n)", text):
        if block.strip() and not re.fullmatch(r"\n[ \t]*\n", block):
            leading = len(block) - len(block.lstrip("\n"))
            blocks.append((block.strip("\n"), line + leading))
        line += block.count("\n")
    return blocks
