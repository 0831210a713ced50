"""`memcli eval`: how well the model writes memory, answers from it, and predicts text
with it, on documents in Re-DocRED's format.

Each mode is a plain function over an `Engine` and a list of `Document`s that
returns a report (`as_dict()` for `--json`, `summary()` for the table); `memcli.cli.eval`
only parses options and prints.
"""
