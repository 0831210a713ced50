"""Hypothesis strategies shared by the tests."""

import unicodedata

from hypothesis import strategies as st

from memcli.store.names import clean, name_problem


def _tidy(text: str) -> str:
    for bad in (">>", "({", "})", "-->"):
        while bad in text:
            text = text.replace(bad, bad[0])
    return unicodedata.normalize("NFC", text).strip().rstrip(">-").strip()


# Valid names exactly as the store keeps them: any unicode, quotes and commas included.
names = (
    st.text(
        alphabet=st.characters(
            blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters=";\x85"
        ),
        min_size=1,
        max_size=30,
    )
    .map(_tidy)
    .filter(lambda s: name_problem(s) is None and clean(s) == s)
)
