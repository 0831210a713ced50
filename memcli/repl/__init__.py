"""`memcli chat`: the REPL, one concern per module (as dbcli/litecli do).

- `conversation` — the turns: answer with memory, extract and store the facts the user
  states, one batch per turn; no terminal code, so scripts, tests and benches share it
- `render`       — Rich rendering of the runtime's events, with the memory calls styled
- `commands`     — the slash-command registry (`/help`, `/why`, `/undo`, `/mem …`)
- `completer`, `keys`, `toolbar` — prompt-toolkit input
- `engines`      — loading and warming the model in the background
- `session`      — the loop: interactive prompt, or lines from stdin / `-e`
- `measure`      — start-up and first-character timings for `make bench`

Nothing here is imported by `memcli` until `memcli chat` runs, and prompt-toolkit only
when the session is interactive.
"""
