"""Hypothesis strategies shared by the tests."""

from hypothesis import strategies as st

from memcli.store.names import clean, name_problem

# Valid names exactly as the store keeps them: any unicode, quotes and commas included.
names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30
).filter(lambda s: name_problem(s) is None and clean(s) == s)
