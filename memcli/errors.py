"""One exception family. The CLI turns any `MemcliError` into a one-line message and a
non-zero exit; anything else escaping is a bug."""


class MemcliError(Exception):
    """Base of every error memcli reports to a person."""

    exit_code = 1


def unreadable(shown: str, exc: OSError, expected: str = "") -> str:
    """Why the file `shown` could not be opened or read, as every one-line error says it:
    `no such file`, `is a directory` (`, not EXPECTED`), else `cannot read: REASON`."""
    if isinstance(exc, FileNotFoundError):
        return f"{shown}: no such file"
    if isinstance(exc, IsADirectoryError):
        return f"{shown}: is a directory" + (f", not {expected}" if expected else "")
    return f"{shown}: cannot read: {exc.strerror or exc}"


class UsageError(MemcliError):
    """The request itself is wrong (bad name, unknown id, conflicting options)."""

    exit_code = 2


class NotFoundError(MemcliError):
    """A triple, entity, batch, file or model that was asked for does not exist."""


class InvalidNameError(UsageError):
    """An entity or relation name that would corrupt memory commands."""


class UnknownRelationError(UsageError):
    """A relation name that memory does not know."""

    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = suggestions
        hint = f" (did you mean: {', '.join(suggestions)}?)" if suggestions else ""
        super().__init__(f"unknown relation {name!r}{hint}; use --new-relation to add it")


class ImportFailed(MemcliError):
    """A CSV/TSV import was refused; `errors` holds every `FILE:LINE: field: problem`."""

    def __init__(self, errors: list[str], total: int):
        self.errors = errors
        self.total = total
        first = errors[0] if errors else "import failed"
        more = f" (and {total - 1} more errors)" if total > 1 else ""
        super().__init__(f"{first}{more}; memory unchanged")


class DatabaseError(MemcliError):
    """The memory file cannot be used: not SQLite, corrupt, or from a newer memcli."""


class UndoError(MemcliError):
    """A batch cannot be reverted (already undone, or later changes depend on it)."""


class ModelError(MemcliError):
    """A model file is missing, unreadable or not a valid GGUF; or a backend failed."""
