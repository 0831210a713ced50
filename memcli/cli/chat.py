"""`memcli chat`: the REPL (see `memcli.repl`)."""

from __future__ import annotations

from typing import Annotated

import typer

from memcli.cli.common import DbOption, ModelChoice, model_options


@model_options()
def chat(
    execute: Annotated[
        list[str] | None,
        typer.Option(
            "--execute",
            "-e",
            metavar="MESSAGE",
            help="Run this message (or /command) and exit; repeatable.",
        ),
    ] = None,
    hide_calls: Annotated[
        bool, typer.Option("--hide-calls", help="Show a short marker instead of raw memory calls.")
    ] = False,
    approve: Annotated[
        bool,
        typer.Option(
            "--approve", help="Ask before storing each fact the model extracts (yes, no or edit)."
        ),
    ] = False,
    new_relations: Annotated[
        bool,
        typer.Option(
            "--new-relations",
            help="When no known relation fits a stated "
            "fact, store it under a relation named from the sentence's "
            "words (always proposed with --approve).",
        ),
    ] = False,
    user: Annotated[
        str | None,
        typer.Option(
            "--user-name",
            metavar="NAME",
            help='Who "I" and "my" are in '
            'memory (default: the name you give, "My name is …", else "the '
            'user").',
            show_default=False,
        ),
    ] = None,
    no_memory: Annotated[
        bool, typer.Option("--no-memory", help="Chat without reading or writing memory.")
    ] = False,
    model_choice: ModelChoice = ModelChoice(),
    db: DbOption = None,
) -> None:
    """Chat with the model. It reads memory to answer and writes the facts you state
    (one batch per turn: /undo reverts it). /help lists the commands.

    When input or output is not a terminal, each line of stdin (or each -e) is a turn
    and the output is plain text.
    """
    import contextlib

    user = _user_name(user)  # before any model work

    from memcli.catalog import resolve_engine
    from memcli.cli.output import note
    from memcli.errors import MemcliError
    from memcli.repl.session import ChatOptions, run_chat
    from memcli.runtime.loader import resolve_files

    # Fold the adapter in now, in the foreground, when it has not been yet (once). A
    # problem with the files is left for the REPL to report, as it does for any load.
    with contextlib.suppress(MemcliError):
        if resolve_engine(model_choice.engine, model_choice.model).kind == "local":
            resolve_files(
                model_choice.model, model_choice.adapter, model_choice.no_adapter, notify=note
            )
    code = run_chat(
        ChatOptions(
            **model_choice.options(),
            db=db,
            hide_calls=hide_calls,
            approve=approve,
            new_relations=new_relations,
            user=user,
            memory=not no_memory,
            execute=list(execute or []),
        )
    )
    if code:
        raise typer.Exit(code)


def _user_name(name: str | None) -> str | None:
    """The --user-name value, checked as any stored name is (a bad one: a usage error)."""
    if name is None:
        return None
    from memcli.errors import InvalidNameError
    from memcli.store.core import check_name

    try:
        return check_name(name, "--user-name")
    except InvalidNameError as exc:
        raise typer.BadParameter(str(exc), param_hint="--user-name") from exc
