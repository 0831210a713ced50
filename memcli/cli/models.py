"""`memcli models`: list, download, choose, inspect and remove local GGUF models."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from memcli import catalog, paths
from memcli.cli.common import YesOption, confirm
from memcli.cli.output import cell, json_line, note, out, print_table, safe
from memcli.errors import UsageError

app = typer.Typer(
    help="Choose the model: list the curated ones, download, set the default (a local file "
    "or an inference server), inspect.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _size(n: int | None) -> str:
    if n is None:
        return ""
    if n >= 10**9:
        return f"{n / 10**9:.2f} GB"
    if n >= 10**6:
        return f"{n / 10**6:.0f} MB"
    return f"{n / 10**3:.0f} KB" if n >= 10**3 else f"{n} B"


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List the curated models, downloaded files and the default (marked *)."""
    rows = catalog.list_models()
    if as_json:
        for row in rows:
            json_line(row.as_dict())
        return
    cells = []
    for row in rows:
        e = row.entry
        if e and e.bundled:
            status = "bundled"
        elif not row.available:
            status = "not downloaded" if e else "missing"
        elif e or (row.path and row.path.parent == paths.models_dir()):
            status = "downloaded"
        else:
            status = "local file"
        size = _size(row.size) or (e.size_label if e and e.size_label else "")
        source = e.repo if e else str(row.path or "")
        cells.append(("*" if row.is_default else "", row.name, size, status, source))

    def table(columns: int) -> Table:
        shown = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for column in ("", "name", "size", "status", "source")[:columns]:
            shown.add_column(column, no_wrap=True)
        for row_cells in cells:
            shown.add_row(*(cell(text) for text in row_cells[:columns]))
        return shown

    whole = table(5)
    if out.measure(whole, options=out.options.update_width(10**4)).maximum <= out.width:
        print_table(whole)
        return
    # Too narrow for a source column: cutting "owner/repository" in the middle would
    # make it wrong to copy, so each source goes whole on a line under its model.
    with out.capture() as captured:
        out.print(table(4))
    lines = [line.rstrip() for line in captured.get().splitlines()]
    under = (f"{line}\n    {safe(row[4])}" for line, row in zip(lines[2:], cells, strict=True))
    body = list(under)
    sys.stdout.write("\n".join(lines[:2] + body) + "\n")


@app.command()
def pull(
    target: Annotated[str, typer.Argument(help="A name from `memcli models list`, or a Hub repo.")],
    file: Annotated[
        str | None, typer.Argument(help="With a repo: the .gguf file in it.", show_default=False)
    ] = None,
    revision: Annotated[
        str | None, typer.Option(help="With REPO FILE: a branch, tag or commit (default main).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even if present.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Download a model into MEMCLI_HOME/models and check it; prints its path.

    `memcli models pull qwen2.5-0.5b` takes a curated model (pinned revision, sha256 checked).

    `memcli models pull OWNER/REPO FILE.gguf` takes any GGUF file from the Hugging Face Hub.

    HF_TOKEN, HF_ENDPOINT and HF_HOME work as for other Hugging Face tools.
    """
    spec: str | tuple[str, str] = (target, file) if file else target
    path = catalog.pull(spec, revision=revision, progress=progress, force=force, notify=note)
    note(f"downloaded {path.name}")
    out.print(str(path), soft_wrap=True)


@app.command()
def use(
    model: Annotated[
        str | None,
        typer.Argument(
            help="A model name or .gguf path; with --engine, the server's name "
            "for the model (default: the only one it serves).",
            show_default=False,
        ),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            metavar="URL",
            help="Save an OpenAI-compatible server as the default engine (`local` "
            "goes back to in-process).",
            show_default=False,
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            help="With --engine: the chat template to apply (a GGUF "
            "file, a Jinja file or `chatml`), when the server does not say.",
            show_default=False,
        ),
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            "--tokenizer",
            metavar="GGUF",
            help="With --engine: the served model's GGUF file here (its vocabulary, "
            "for client-side masks).",
            show_default=False,
        ),
    ] = None,
    constraint: Annotated[
        str | None,
        typer.Option(
            "--constraint",
            help="With --engine: gbnf, llguidance, logit_bias or "
            "logprobs (default: found at connect time).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Make a model the default for `ask`, `chat` and the REPL (stored in config.json),
    or with --engine a server and the model name to ask it for."""
    if engine is not None:
        if constraint is not None and constraint not in (
            "gbnf",
            "llguidance",
            "logit_bias",
            "logprobs",
        ):
            raise UsageError(
                f"--constraint {constraint!r}: use gbnf, llguidance, logit_bias or logprobs"
            )
        stored = catalog.set_engine(
            engine, model, template=template, tokenizer=tokenizer, constraint=constraint
        )
        note(f"default engine: {stored}")
        return
    if template or tokenizer or constraint:
        raise UsageError("--template, --tokenizer and --constraint go with --engine URL")
    if model is None:
        raise UsageError("give a model name or path (or --engine URL)")
    stored = catalog.set_default(model)
    note(f"default model: {stored}")


@app.command()
def info(
    model: Annotated[
        str | None, typer.Argument(help="A model name or .gguf path (default: the default model).")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            metavar="URL",
            envvar="MEMCLI_ENGINE",
            help="Connect to this server and show what it can do (the capability "
            "check memcli makes at connect time).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show what a model file says about itself, read from its GGUF header only; with
    --engine, what a server serves and how memcli keeps memory calls well formed there."""
    spec = catalog.resolve_engine(engine, model) if engine else None
    if spec is not None and spec.kind != "local":
        _engine_info(spec, as_json)
        return
    path = catalog.resolve_model(model)
    gguf = catalog.read_gguf_info(path)
    entry = next((r.entry for r in catalog.list_models() if r.entry and r.path == path), None)
    data = gguf.as_dict()
    if entry:
        data["registry"] = entry.as_dict()
    if as_json:
        json_line(data)
        return
    rows = [
        ("file", str(gguf.path)),
        ("size", f"{_size(gguf.file_size)} ({gguf.file_size} bytes)"),
        ("format", f"GGUF v{gguf.version}, {gguf.tensor_count} tensors"),
        ("architecture", gguf.architecture or "unknown"),
        ("name", gguf.name or "unknown"),
        ("parameters", f"{gguf.parameter_count:,}" if gguf.parameter_count else "unknown"),
        ("quantisation", gguf.quantisation or "unknown"),
        ("context length", str(gguf.context_length or "unknown")),
        ("chat template", gguf.chat_template_first_line or "none (memcli's default applies)"),
        ("status", gguf.problem or "ok"),
    ]
    if entry:
        rows += [("source", f"{entry.repo} @ {entry.revision}"), ("licence", entry.licence or "")]
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)


def _engine_info(spec: catalog.EngineSpec, as_json: bool) -> None:
    from memcli.runtime.loader import open_engine

    engine = open_engine(None, engine=spec.url, model=spec.model)
    try:
        data = engine.describe()
        caps = engine.capabilities()
    finally:
        engine.close()
    if as_json:
        json_line({**data, "capabilities": caps.as_dict()})
        return
    rows = [(k, str(v)) for k, v in data.items()]
    rows.append(("eval ppl", "yes" if caps.logprobs else "no (needs every token's logits)"))
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)


@app.command()
def rm(
    name: Annotated[str, typer.Argument(help="A downloaded model's name.")],
    yes: YesOption = False,
) -> None:
    """Delete a downloaded model file (the bundled model cannot be removed)."""
    target = catalog.removable(name)  # a model that is not there is an error, not a question
    confirm(f"Remove {name} ({target})?", f"rm deletes {target}", yes=yes)
    path = catalog.remove(name)
    note(f"removed {path}")
