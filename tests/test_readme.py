"""What a new user meets: every `memcli mem …` and `memcli models …` example in the
README's `sh` blocks, run in the README's order in one fresh memcli home, with the exit
status and the output its comment claims.

`EXPECTED` holds, for each example line, its exit status and patterns its output must
match; a README example without an entry (or an entry whose example is gone) fails, so
the two stay in step. The Hub is a local stand-in (tests/fixtures/gguf_hub.py) serving a
small GGUF under the registry's qwen2.5-0.5b name. Not run here: the three `--engine
http://gpu-box:8000` lines (they need an inference server; tests/test_remote.py runs
those commands against one) and the MCP section's console transcript (another memory).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memcli import catalog
from memcli.cli.app import app
from tests.fixtures.gguf_hub import FakeHub
from tests.fixtures.gguf_writer import write_gguf

README = Path(__file__).resolve().parent.parent / "README.md"
NEEDS_A_SERVER = "--engine http://gpu-box:8000"
FILES = {
    "facts.csv": "subject,relation,object,source\n"
    "Ada Lovelace,employer,Analytical Engine project,notes\n"
    "Ada Lovelace,country of citizenship,United Kingdom,notes\n",
    "facts.tsv": "subject\trelation\tobject\n"
    "Alan Turing\temployer\tNational Physical Laboratory\n"
    "Alan Turing\tfavourite colour\tgreen\n",
}
DAY = r"\d{4}-\d\d-\d\d"

# example (as written, comment removed) -> (exit status, patterns its output must match)
EXPECTED: dict[str, tuple[int, list[str]]] = {
    "memcli models list": (
        0, [r"\* +smollm2-135m +98 MB +bundled", r"qwen2\.5-0\.5b .*not downloaded"]),
    "memcli models pull qwen2.5-0.5b": (0, [r"models/qwen2\.5-0\.5b\.gguf\n"]),
    "memcli models use qwen2.5-0.5b": (0, [r"default model: qwen2\.5-0\.5b"]),
    "memcli models info": (0, [r"qwen2\.5-0\.5b\.gguf", r"format +GGUF v3"]),
    "memcli models rm qwen2.5-0.5b": (
        0, [r"Remove qwen2\.5-0\.5b \(.*\)\?", r"removed .*qwen2\.5-0\.5b\.gguf"]),
    'memcli mem add "Lake Geneva" country Switzerland': (0, [r"^1\n$"]),
    'memcli mem add "Lake Geneva" country France --source "atlas p. 12"': (0, [r"^2\n$"]),
    'memcli mem ls --subject "lake  GENEVA"': (
        0, [r"1 +Lake Geneva +country +Switzerland", r"2 +Lake Geneva +country +France"]),
    'memcli mem edit 2 --object "France (south shore)"': (
        0, [r"edited 2: Lake Geneva >> country >> France \(south shore\)"]),
    "memcli mem show 2": (
        0, [r"source: +atlas p\. 12", r"→  Lake Geneva >> country >> France \(south"]),
    'memcli mem search "lake genva"': (0, [r"^score", r"\d+ +entity +Lake Geneva +2"]),
    'memcli mem rm --object "France (south shore)" --dry-run': (
        0, [r"2 +Lake Geneva +country +France \(south shore\)", r"would remove 1 fact\n"]),
    "memcli mem relations": (0, [r"head of government +P6 +single", r"country +P17 +multi +2"]),
    "memcli mem stats": (0, [r"triples: 2\n", r"relations: 96\n"]),
    'memcli mem add "Dana Whitfield" residence Oslo': (0, [r"^3\n$"]),
    'memcli mem add "Dana Whitfield" residence Bergen': (
        0, [r"^4\n", r"superseded 3: Dana Whitfield >> residence: Oslo → Bergen"]),
    "memcli mem ls --history": (0, [r"3 +Dana Whitfield +residence +Oslo .*→ 4"]),
    "memcli mem show 3": (0, [rf"values: +Oslo \(until {DAY}, batch 5\) → Bergen"]),
    'memcli mem add "Dana Whitfield" employer "Fjord Labs"': (0, [r"^5\n$"]),
    'memcli mem supersede 5 --object "Nordhavn Academy"': (
        0, [r"^6\n", r"superseded 5: Dana Whitfield >> employer: Fjord Labs → Nordhavn Academy"]),
    "memcli mem undo": (0, [r"undid batch \d+ \((supersede|restore)"]),
    "memcli mem relations --single employer": (0, [r"employer: single-valued; batch \d+"]),
    "memcli mem import facts.csv": (0, [r"added 2 of 2 rows"]),
    "memcli mem import facts.csv --dry-run": (
        0, [r"would add 0 of 2 rows; duplicates: 0 in file, 2"]),
    "memcli mem import facts.tsv --skip-errors --rejects bad-rows.csv": (
        0, [r"facts\.tsv:3: relation: unknown relation 'favourite colour'",
            r"added 1 of 2 rows.*errors: 1 \(rejects in bad-rows\.csv\)"]),
    "cat facts.csv | memcli mem import -": (0, [r"added 0 of 2 rows; duplicates: 0 in file, 2"]),
    "memcli mem export -o snapshot.jsonl": (0, [r"exported \d+ facts as jsonl to snapshot\.jsonl"]),
    "memcli mem export -o snapshot.db": (0, [r"exported \d+ facts as sqlite to snapshot\.db"]),
    "memcli mem export --format csv": (
        0, [r"^subject,relation,object,source,id,superseded_at,superseded_by\n",
            r"Lake Geneva,country,Switzerland,manual,1,,\n"]),
    "memcli mem export -o memory.nt": (0, [r"exported \d+ facts as nt to memory\.nt"]),
    # the next line of the README says it: without a terminal, replacing needs --yes
    "memcli mem restore snapshot.jsonl": (2, [r"pass --yes"]),
    "memcli mem restore --yes snapshot.db": (0, [r"restored snapshot\.db: removed \d+, added \d+"]),
    "memcli models use --engine local": (0, [r"default engine: local"]),
    "memcli mem log": (0, [r"batch +when", r"^ +10 .* import .*import facts\.csv"]),
    "memcli mem log --batch 13": (0, [r"^1: removed Lake Geneva >> country >> Switzerland$",
                                      r"^1: added Lake Geneva >> country >> Switzerland$"]),
    "memcli mem undo --batch 10": (0, [r"undid batch 10 \(import: import facts\.csv"]),
}  # fmt: skip


def examples() -> list[tuple[str, str]]:
    """(example line as written, the comment after it) for every mem/models example."""
    found = []
    for block in re.findall(r"^```sh\n(.*?)^```", README.read_text(encoding="utf-8"),
                            flags=re.MULTILINE | re.DOTALL):  # fmt: skip
        for line in block.splitlines():
            command, _, comment = line.partition("  #")
            command = command.strip()
            if re.match(r"(cat \S+ \| )?memcli (mem|models)\b", command):
                found.append((command, comment.strip()))
    return found


def test_every_example_has_an_expectation():
    written = [command for command, _ in examples() if NEEDS_A_SERVER not in command]
    assert sorted(set(written) - set(EXPECTED)) == []
    assert sorted(set(EXPECTED) - set(written)) == []


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The Hub stand-in with a small GGUF for qwen2.5-0.5b, and a registry whose
    qwen2.5-0.5b entry names that file."""
    from huggingface_hub import constants

    body = write_gguf(tmp_path / "served.gguf").read_bytes()
    entries = json.loads(catalog.REGISTRY_PATHS[0].read_text())
    for entry in entries["models"]:
        if entry["name"] == "qwen2.5-0.5b":
            entry.update(sha256=hashlib.sha256(body).hexdigest(), size=len(body))
            served = FakeHub()
            served.add(entry["repo"], entry["file"], body)
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(entries))
    monkeypatch.setattr(catalog, "REGISTRY_PATHS", [registry])
    served.start()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", served.url)
    yield served
    served.stop()


def test_the_examples_work_as_written_in_order(hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    for name, text in FILES.items():
        Path(name).write_text(text, encoding="utf-8")
    runner = CliRunner()
    ran = []
    for example, comment in examples():
        if NEEDS_A_SERVER in example:
            continue
        status, patterns = EXPECTED[example]
        command = example
        stdin = None
        piped = re.match(r"cat (\S+) \| (.*)", command)
        if piped:
            stdin, command = Path(piped[1]).read_text(encoding="utf-8"), piped[2]
        at_terminal = command.startswith("memcli models rm")
        if at_terminal:
            stdin = "y\n"  # it asks first, at a terminal as here
        args = shlex.split(command)[1:]
        if args[:2] == ["models", "pull"]:
            args.append("--no-progress")
        with monkeypatch.context() as patch:
            if at_terminal:
                patch.setattr("memcli.cli.common.interactive", lambda: True)
            result = runner.invoke(app, args, input=stdin)
        output = result.stdout + result.stderr
        where = f"README example `{command}`  # {comment}\n{output}"
        assert result.exit_code == status, where
        for pattern in patterns:
            assert re.search(pattern, output, flags=re.MULTILINE), f"{pattern!r} in {where}"
        ran.append(example)
    assert set(ran) == set(EXPECTED)
