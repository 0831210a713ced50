"""The layering of memcli/, read from the source (every import statement, those under
`if TYPE_CHECKING:` and inside functions included): each module's dependencies point one
way, and the dependency rules of the README's architecture notes hold."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "memcli"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The memcli module that `import name` runs (`memcli.store.core.Fact` → core)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported(module: str) -> set[str]:
    """Every name `module` imports, dotted in full (`from . import x` resolved)."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + [base] * bool(base))
            for alias in node.names:  # `from memcli import protocol` names a module
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        targets = {_resolve(n) for n in _imported(module) if n.split(".")[0] == "memcli"}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


GRAPH = _graph()


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules round it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_graph_reads_the_imports_it_should():
    assert "memcli.store.core" in GRAPH["memcli.runtime.engine"]
    assert "memcli.runtime.engine_api" in GRAPH["memcli.runtime.engine"]
    assert "memcli.runtime.events" in GRAPH["memcli.runtime.engine_api"]  # TYPE_CHECKING
    assert "memcli.runtime.embeddings" in GRAPH["memcli.runtime.writing"]  # in a function
    assert "memcli.protocol" in GRAPH["memcli.runtime.engine"]  # `from memcli import protocol`
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_memcli_has_no_import_cycle():
    """Not even through an import under `if TYPE_CHECKING:` or inside a function: where a
    module needs the type of a caller, it names a small Protocol of its own instead."""
    graph = {m: {d for d in deps if not _excepted(m, d)} for m, deps in GRAPH.items()}
    assert _cycle(graph) is None


BASE = ("memcli.errors", "memcli.paths", "memcli.syntax")
# What each part of memcli may import besides itself (the README's architecture notes).
MAY_IMPORT = {
    "memcli.syntax": (),
    "memcli.errors": (),
    "memcli.paths": ("memcli.errors",),
    "memcli.catalog": ("memcli.errors", "memcli.paths"),
    "memcli.protocol": BASE,
    "memcli.store": BASE,
    "memcli.runtime": (*BASE, "memcli.protocol", "memcli.store", "memcli.catalog"),
    "memcli.evaluation": (*BASE, "memcli.protocol", "memcli.store", "memcli.runtime"),
    "memcli.repl": (*BASE, "memcli.protocol", "memcli.store", "memcli.runtime"),
    "memcli.mcp": (*BASE, "memcli.protocol", "memcli.store", "memcli.runtime"),
    "memcli.cli": ("memcli",),
    "memcli.__main__": ("memcli.cli",),
    "memcli": (),
}
# Imports that break those rules, each with why it is there: (module, what it may import
# of a part it otherwise may not). They are left out of the cycle check too.
KNOWN_EXCEPTIONS = {
    ("memcli.repl.mem", "memcli.cli"): "/mem parses with the CLI's mem commands and shows "
    "their results with its output functions (the CLI imports the REPL only inside "
    "`memcli chat`)",
}


def _excepted(module: str, dep: str) -> bool:
    return any(module == m and _within(dep, (d,)) for m, d in KNOWN_EXCEPTIONS)


def _part(module: str) -> str:
    return module if module == "memcli" else ".".join(module.split(".")[:2])


def _within(module: str, parts: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in parts)


def test_every_part_imports_only_what_the_rules_allow():
    assert {_part(m) for m in MODULES} <= set(MAY_IMPORT)
    wrong = sorted(
        (module, dep)
        for module, deps in GRAPH.items()
        for dep in deps
        if _part(dep) != _part(module)
        and not _within(dep, MAY_IMPORT[_part(module)])
        and not _excepted(module, dep)
    )
    assert wrong == []


def test_the_rules_check_something():
    assert _within("memcli.store.core", MAY_IMPORT["memcli.runtime"])
    assert not _within("memcli.repl.render", MAY_IMPORT["memcli.runtime"])
    assert not _within("memcli.cli.app", MAY_IMPORT["memcli.store"])


def test_no_production_module_imports_the_test_fakes():
    """The scripted fake models live in tests/fakes.py; memcli/ never imports `tests`."""
    for module in MODULES:
        names = _imported(module)
        assert not {n for n in names if n.split(".")[0] == "tests"}, module
        assert not {n for n in names if n.rpartition(".")[2].endswith("FakeBackend")}, module
