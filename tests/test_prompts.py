"""The write prompt's context: the last whole sentences within the limit."""

from memcli.runtime.prompts import MAX_CONTEXT_CHARS, trim_context, write_user_message


def test_context_is_cut_to_whole_sentences():
    first = "An opening sentence that will not fit. "
    rest = "A sentence of some length goes here. " * 9
    context = (first + rest).strip()
    assert len(context) > MAX_CONTEXT_CHARS
    trimmed = trim_context(context)
    assert len(trimmed) <= MAX_CONTEXT_CHARS
    assert trimmed.startswith("A sentence") and trimmed.endswith("goes here.")
    assert context.endswith(trimmed)


def test_short_context_kept_and_one_long_sentence_dropped():
    assert trim_context("  Short. Context. ") == "Short. Context."
    assert trim_context("x" * (MAX_CONTEXT_CHARS + 1)) == ""
    assert write_user_message("It is.", "Before.") == "Context: Before.\nSentence: It is."
