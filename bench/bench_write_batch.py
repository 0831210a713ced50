"""Batched writes: `ingest`/`eval write` sentences per second with several sentences
decoded together (`--batch N`, `memcli.runtime.write_batch`) against one at a time
(`--batch 1`), on the same Re-DocRED sentences in one run, with the F1 of both and how
many sentences got a different call (greedy decoding: none expected).

Bundled model (+ adapter), one thread, documents from 400 on of the dev set. Where the
time goes (one at a time, per sentence): ~90 prompt tokens evaluated (the context
window slides, so only the instructions are reused) against ~16 generated; batching
speeds up the generated part, not the prompt, which bounds the gain.

    python -m bench.bench_write_batch [--quick]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import row, skipped, speed_row

FIRST_DOC = 400


def run(quick: bool = False) -> list[Any]:
    from memcli.evaluation.data import default_data_path, load_documents
    from memcli.evaluation.write import evaluate_write, sentence_count
    from memcli.runtime.engine_api import EngineConfig
    from memcli.runtime.loader import load_engine
    from memcli.runtime.write_batch import DEFAULT_BATCH
    from memcli.store.core import TripleStore

    data = default_data_path()
    if data is None:
        return [skipped("batched writes", "no Re-DocRED data file")]
    n_docs = 2 if quick else 10
    docs = load_documents(data, f"{FIRST_DOC}:{FIRST_DOC + n_docs}")
    n = sentence_count(docs)
    sizes = [DEFAULT_BATCH] if quick else sorted({DEFAULT_BATCH, 16})
    with tempfile.TemporaryDirectory() as folder, TripleStore(Path(folder) / "m.db") as store:
        engine = load_engine(store, threads=1, config=EngineConfig(temperature=0.0))
        try:
            engine.warm_up("write")
            reports = {b: evaluate_write(engine, docs, batch=b) for b in [1, *sizes]}
        finally:
            engine.close()
    one = reports[1]
    calls = [[s.predicted for s in r.sentences] for r in reports.values()]
    rows = []
    for b in sizes:
        report = reports[b]
        rows.append(
            speed_row(
                f"ingest time a sentence, --batch {b} vs --batch 1 ({n} Re-DocRED sentences, "
                "1 thread)",
                report.seconds / n,
                one.seconds / n,
                "s/sentence",
                3.0,
            )
        )
        differ = sum(
            a != c for a, c in zip(calls[0], [s.predicted for s in report.sentences], strict=True)
        )
        rows.append(
            row(
                f"eval write F1, --batch {b} vs --batch 1 ({differ} of {n} sentences "
                "wrote a different call)",
                report.prf.f1,
                one.prf.f1,
                "F1",
                ratio=report.prf.f1 / one.prf.f1 if one.prf.f1 else None,
                goal="ratio = 1 (same calls)",
                ok=differ == 0,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    for found in run("--quick" in (argv if argv is not None else sys.argv[1:])):
        print(found)


if __name__ == "__main__":
    main()
