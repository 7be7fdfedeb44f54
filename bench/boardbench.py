"""Board query latency with many open deals in one pipeline (``bench projections``,
section ``board``).

The history's largest pipeline is topped up with deals opened by the domain (in
stages spread over the pipeline) until it holds ``deals`` open deals; the board read
model catches up; then :func:`projections.board.board` and the other board queries
are timed on a read connection, as the HTTP routes call them.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Latency, fmt_int, fmt_ms, new_table, out
from bench.history import History
from commands.app import Crm
from projections.host import ReadModels
from projections.projector import Projector

TARGET_P99_MS = 20.0
MISSING = "board read model not present (projections/board.py): section skipped"


def available() -> bool:
    return importlib.util.find_spec("projections.board") is not None


@dataclass
class Board:
    pipeline: str
    open_deals: int
    topped_up: int
    catch_up_seconds: float
    #: query name -> latency figures (ms), as :meth:`Latency.as_json`.
    queries: dict[str, dict[str, float | int | None]] = field(default_factory=dict)


def measure(
    crm: Crm,
    history: History,
    directory: Path,
    factories: dict[str, Callable[[], Projector]],
    page: int,
    deals: int,
    queries: int,
) -> Board:
    from projections import board as boards

    pipeline = max(
        history.pipelines,
        key=lambda p: sum(1 for d in history.open_deals if d.pipeline_id == p.id),
    )
    have = sum(1 for d in history.open_deals if d.pipeline_id == pipeline.id)
    missing = max(0, deals - have)
    history.open_deals_in(pipeline, missing)
    # The board of the full rebuild when it is registered, else its own from zero.
    name = "board"
    factory = factories.get(name, boards.Board)
    started = time.perf_counter()
    reads = ReadModels(crm.recorder, directory if name in factories else None, {name: factory})
    try:
        reads.runner.catch_up()
        caught_up = time.perf_counter() - started
        con = reads.store(name).reader()
        pipeline_id = str(pipeline.id)
        (open_deals,) = con.execute(
            "SELECT count(*) FROM board_deals WHERE pipeline_id = CAST(? AS UUID)", [pipeline_id]
        ).fetchone() or (0,)
        now = datetime.now(UTC)
        first = boards.board(con, pipeline_id, now)
        assert first is not None, "the board does not know the pipeline"
        stage = first["stages"][len(first["stages"]) // 2]
        owner = str(history.reps[0].id)
        cases: dict[str, Callable[[], Any]] = {
            "board (25 deals per stage)": lambda: boards.board(con, pipeline_id, now),
            "board, one owner": lambda: boards.board(con, pipeline_id, now, owner=owner),
            "board, one currency": lambda: boards.board(con, pipeline_id, now, currency="EUR"),
            "stage_deals, 100 after a cursor": lambda: boards.stage_deals(
                con, pipeline_id, stage["stage_id"], now, after=stage["next_after"], limit=100
            ),
        }
        result = Board(pipeline.name, int(open_deals), missing, caught_up)
        for label, query in cases.items():
            for _ in range(5):  # warm-up
                query()
            timings = []
            for _ in range(queries):
                sent = time.perf_counter()
                query()
                timings.append(time.perf_counter() - sent)
            result.queries[label] = Latency.of(timings).as_json()
        con.close()
    finally:
        reads.close()
    return result


def print_board(store: str, board: Board, note: str) -> None:
    table = new_table(
        f"Chronicle CRM · {store} · board queries, {board.open_deals:,} open deals in "
        f"'{board.pipeline}'",
        ("query", "queries", "p50 ms", "p90 ms", "p99 ms", "max ms", "target"),
        f"{fmt_int(board.topped_up)} deals opened for this on top of the history; the board "
        f"caught up in {board.catch_up_seconds:.1f} s. One read connection, one thread; "
        f"target p99 <= {TARGET_P99_MS:.0f} ms for the board. {note}",
    )
    for label, figures in board.queries.items():
        p99 = figures["p99_ms"]
        table.add_row(
            label,
            fmt_int(int(figures["count"] or 0)),
            fmt_ms(float(figures["p50_ms"] or 0)),
            fmt_ms(float(figures["p90_ms"] or 0)),
            fmt_ms(float(p99 or 0)),
            fmt_ms(float(figures["max_ms"] or 0)),
            ("met" if p99 is not None and p99 <= TARGET_P99_MS else "[yellow]missed[/yellow]")
            if label.startswith("board (")
            else "",
        )
    out.print(table)
