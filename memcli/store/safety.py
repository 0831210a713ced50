"""What keeps memory and the terminal safe from hostile input: SQLite integer bounds,
read-only opening of a snapshot by a properly escaped URI, output paths that may not land
on a live memory file, atomic writes, and text made safe to print.

Every front end (CLI, REPL, MCP server) goes through these, so a rule is kept in one
place.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO
from urllib.parse import quote

from memcli.errors import MemcliError, NotFoundError, UsageError

MAX_INT = 2**63 - 1  # the largest integer SQLite stores; ids and limits above it are refused
MEMORY_SIDECARS = ("", "-wal", "-shm", "-journal")

# -- integers ------------------------------------------------------------------------------


def check_id(value: int, what: str = "fact") -> int:
    """An id SQLite can hold; larger or non-positive ones cannot name anything."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT:
        raise NotFoundError(f"no {what} with id {_clip(value)}")
    return value


def check_limit(value: int | None, what: str = "limit") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise UsageError(f"{what} {_clip(value)} is out of range (0 to {MAX_INT})")
    return value


def _clip(value: object) -> str:
    text = str(value)
    return text if len(text) <= 30 else text[:27] + "…"


# -- opening SQLite files by path ------------------------------------------------------------


def sqlite_uri(path: Path, **params: str) -> str:
    """A `file:` URI for `path` with every character SQLite's URI parser treats specially
    (`%`, `#`, `?`, and anything not plainly printable) percent-encoded."""
    encoded = quote(str(path.resolve()), safe="/")
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"file:{encoded}" + (f"?{query}" if query else "")


def connect_readonly(path: Path, timeout: float = 60.0) -> sqlite3.Connection:
    """Open an SQLite file strictly read-only, creating nothing beside it.

    A file in WAL mode whose `-wal` is absent holds everything in the main file: it is
    opened `immutable` so that SQLite does not create a `-shm` next to it. With a `-wal`
    present (a memory in use), the normal read-only mode reads it."""
    params = {"mode": "ro"}
    if _wal_mode(path) and not Path(f"{path}-wal").exists():
        params["immutable"] = "1"
    return sqlite3.connect(
        sqlite_uri(path, **params), uri=True, timeout=timeout, isolation_level=None
    )


def _wal_mode(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[18] == 2 and header[19] == 2


def connect_path(path: Path) -> str:
    """The name to give `sqlite3.connect` for a plain (non-URI) path: absolute, so that
    a name such as `file:x?mode=memory` can never be read as a URI."""
    return str(path.absolute())


# -- output paths ------------------------------------------------------------------------------


def protected_files(*memories: Path | None) -> list[tuple[Path, str]]:
    """The live memory files (and their -wal, -shm, -journal) that no output may
    replace, each with what it is."""
    from memcli import paths

    found: list[tuple[Path, str]] = []
    for memory in (*memories, paths.default_db()):
        if memory is None:
            continue
        base = Path(memory).expanduser()
        shown = printable(str(base))
        found.append((base, f"the memory file {shown}"))
        found += [
            (Path(f"{base}{suffix}"), f"the {suffix[1:]} file of the memory {shown}")
            for suffix in MEMORY_SIDECARS[1:]
        ]
    return found


def output_target(
    path: str | Path, protected: Iterable[tuple[Path, str]], *, what: str = "output"
) -> Path:
    """Where an output to `path` really goes (symbolic links followed), refused when that
    is a directory or one of the `protected` files."""
    target = Path(path).expanduser()
    shown = printable(str(path))
    if target.is_dir():
        raise UsageError(f"{shown}: is a directory; give a file name for the {what}")
    resolved = target.resolve()
    for guarded, description in protected:
        if resolved == guarded.resolve() or _same_file(resolved, guarded):
            raise UsageError(
                f"{shown}: that is {description}; the {what} would overwrite it. "
                "Choose another file"
            )
    return resolved


def _same_file(a: Path, b: Path) -> bool:
    """Hard links and other spellings of one file."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


@contextlib.contextmanager
def atomic_output(target: Path, *, binary: bool = False) -> Iterator[IO]:
    """A file in `target`'s directory that replaces `target` only when the block ends
    without error; on error (or Ctrl-C) `target` is left as it was."""
    partial = temporary_beside(target)
    try:
        if binary:
            handle: IO = open(partial, "wb")  # noqa: SIM115 (closed by the `with` below)
        else:
            handle = open(partial, "w", encoding="utf-8", newline="")  # noqa: SIM115
        with handle:
            yield handle
        partial.replace(target)
    except OSError as exc:
        raise MemcliError(
            f"{printable(str(target))}: cannot write: {exc.strerror or exc}"
        ) from None
    finally:
        partial.unlink(missing_ok=True)


def temporary_beside(target: Path) -> Path:
    """A fresh name in `target`'s directory for a file to be renamed onto `target`."""
    shown = printable(str(target))
    try:
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    except OSError as exc:
        raise MemcliError(f"{shown}: cannot write: {exc.strerror}") from None
    os.close(fd)
    os.chmod(temp, _mode_for(target))
    return Path(temp)


def _mode_for(target: Path) -> int:
    """The existing file's permissions, else what a new file gets under the umask."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


# -- text for a terminal ---------------------------------------------------------------------

# C0 and C1 controls (ESC starts every CSI/OSC sequence), DEL, line and paragraph
# separators, bidirectional controls and marks, and other invisible format characters
# that could hide or reorder what a person reads.
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every character that could drive or deceive a terminal shown as an
    escape (`\\x1b`, `\\u202e`); ordinary text, tabs aside, is unchanged."""
    if not _UNPRINTABLE.search(text):
        return text

    def escape(match: re.Match[str]) -> str:
        c = match.group()
        if keep_newlines and c == "\n":
            return c
        code = ord(c)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNPRINTABLE.sub(escape, text)


# -- identifying a memory before writing to it -------------------------------------------------


def identify_memory(path: Path, schema_version: int) -> int:
    """The schema version of the SQLite file at `path`, read without changing a byte of
    it; DatabaseError when it is not a memcli memory this version can open.

    Opening a file read-write could change it before any check ran: SQLite checkpoints
    another application's `-wal` into the file when the last connection closes, and
    rolls back a hot journal. So the first look is read-only (see `connect_readonly`:
    only a WAL file whose `-wal` is present but whose `-shm` was deleted gets a new
    `-shm`, as every reader of it would)."""
    from memcli.errors import DatabaseError

    shown = printable(str(path))
    try:
        db = connect_readonly(path, timeout=5.0)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            db.close()
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        raise DatabaseError(f"{shown}: cannot open memory: {exc}; file left untouched") from None
    if version > schema_version:
        raise DatabaseError(
            f"{shown}: written by a newer memcli (schema {version}, this one knows "
            f"{schema_version}); upgrade memcli. File left untouched"
        )
    if (version > 0 and "_memcli_migrations" not in tables) or (
        version == 0 and tables - {"_memcli_migrations"}
    ):
        raise DatabaseError(
            f"{shown}: an SQLite database, but not a memcli memory; file left untouched"
        )
    return version
