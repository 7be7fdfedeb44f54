"""Bulk import (``crm import``) against the store's own ways of writing many events, on
PostgreSQL and SQLite.

For each store, each way in a fresh store (PostgreSQL: a throw-away database, dropped
afterwards):

  import    ``Importer`` over a CSV file of --rows rows (10% accounts, 40% contacts
            with one e-mail each, 20% deals, 30% notes; every row refers to an earlier
            one): parsing, validation by the commands' models and the domain, e-mail
            keys, the hash chain, batches of 5,000 rows per transaction
  re-run    the same file again: every row found already imported, nothing written
  save()    eventsourcing's own ``Application.save()`` of 100 new aggregates per call
            (its recorder, no chain): the library's batched write, the baseline
  COPY      raw psycopg ``COPY`` of as many rows into a table of the events table's
            shape (PostgreSQL; on SQLite one ``executemany`` in one transaction):
            the store's ceiling, nothing validated, chained or encoded per event

events/s counts events written (an import row writes 1 event, a contact with an
e-mail 2). Target (issue 7): import >= 50,000 events/s on PostgreSQL.
"""

from __future__ import annotations

import argparse
import csv
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.common import (
    BenchError,
    ServiceUnavailableError,
    add_output_options,
    add_store_options,
    err,
    fmt_int,
    fmt_rate,
    fmt_ratio,
    load_average,
    new_table,
    out,
    postgres_url,
    progress,
    ratio,
    throwaway_database,
    write_json,
)
from commands.app import Crm, store_env
from commands.context import Context
from commands.handlers import execute
from commands.import_files import FileFormat, check_file, read_rows
from commands.importing import Importer
from commands.pipelines import CreatePipeline, StageSpec
from commands.users import InviteUser
from domain.roles import Authority, Role

NAME = "import"
SUMMARY = "crm import of N rows against eventsourcing's batched save() and raw COPY"
STORES = ("postgres", "sqlite")
TARGET_EVENTS_PER_SECOND = 50_000
SAVE_BATCH = 100
COLUMNS = [
    "kind",
    "external_id",
    "name",
    "country",
    "first_name",
    "last_name",
    "emails",
    "account",
    "title",
    "amount",
    "currency",
    "pipeline",
    "stage",
    "contacts",
    "type",
    "occurred_at",
    "body",
]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows (1,000,000)")
    add_store_options(parser, STORES)
    add_output_options(parser, NAME)


def mixed_rows(n: int) -> Iterator[dict[str, str]]:
    """``n`` import rows: accounts, contacts of the latest account, deals and notes."""
    accounts = contacts = deals = 0
    for i in range(n):
        kind = i % 10
        if kind == 0 or accounts == 0:
            accounts += 1
            yield {"kind": "account", "external_id": f"A{accounts}", "name": f"Co {accounts}"}
        elif kind <= 4:
            contacts += 1
            yield {
                "kind": "contact",
                "external_id": f"C{contacts}",
                "first_name": "Pat",
                "last_name": f"Doe {contacts}",
                "emails": f"pat{contacts}@example.com",
                "account": f"A{accounts}",
            }
        elif kind <= 6:
            deals += 1
            yield {
                "kind": "deal",
                "external_id": f"D{deals}",
                "title": f"Deal {deals}",
                "amount": "1200.50",
                "currency": "EUR",
                "pipeline": "Sales",
                "stage": "Lead",
                "account": f"A{accounts}",
                "contacts": f"C{max(contacts, 1)}",
            }
        else:
            yield {
                "kind": "interaction",
                "external_id": f"I{i}",
                "type": "note",
                "occurred_at": "2024-01-02T03:04:05+00:00",
                "body": "called, left a message",
                "contacts": f"C{max(contacts, 1)}",
            }


def write_file(path: Path, n: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        writer.writerows(mixed_rows(n))


class Registered(Aggregate):
    """The baseline's aggregate: one created event with a few fields, as a row's record."""

    @event("Registered")
    def __init__(self, name: str, owner: str, country: str) -> None:
        self.name, self.owner, self.country = name, owner, country


def time_import(env: dict[str, str], path: Path, rows: int, tick: Any) -> dict[str, Any]:
    crm = Crm(env=env)
    try:
        system = Context(actor=Authority.system(), source="bench")
        execute(crm, InviteUser(email="owner@example.com", name="O", role=Role.OWNER), system)
        stages = [StageSpec(name="Lead", probability=10)]
        execute(crm, CreatePipeline(name="Sales", stages=stages), system)
        figures: dict[str, Any] = {}
        for way in ("import", "rerun"):
            importer = Importer(
                crm, system, "bench", default_owner="owner@example.com", progress=tick
            )
            started = time.perf_counter()
            check_file(path, FileFormat.csv)  # as `crm import` reads the file first
            report = importer.run(read_rows(path, FileFormat.csv))
            seconds = time.perf_counter() - started
            if report.refused:
                raise BenchError(f"{len(report.refused)} rows refused: {report.refused[0]}")
            figures[way] = {"events": report.events, "rows": report.rows, "seconds": seconds}
        return figures
    finally:
        crm.close()


def time_save(env: dict[str, str], events: int, tick: Any) -> dict[str, Any]:
    library_env = {k: v for k, v in env.items() if k != "APPLICATION_RECORDER_TOPIC"}
    app: Application[uuid.UUID] = Application(env=library_env)
    try:
        started = time.perf_counter()
        written = 0
        while written < events:
            batch = [
                Registered(name=f"Co {written + i}", owner="o", country="DE")
                for i in range(min(SAVE_BATCH, events - written))
            ]
            app.save(*batch)
            written += len(batch)
            tick(len(batch))
        return {"events": written, "seconds": time.perf_counter() - started}
    finally:
        app.close()


def sample_state() -> bytes:
    return (
        b'{"name":"Co 1","website":null,"industry":null,"country":"DE","address":null,'
        b'"owner_id":{"_type_":"uuid_hex","_data_":"0f1e2d3c4b5a69788796a5b4c3d2e1f0"},'
        b'"parent_id":null,"timestamp":{"_type_":"datetime_iso","_data_":'
        b'"2026-01-02T03:04:05.678901+00:00"},"originator_topic":"domain.account:Account",'
        b'"_meta":{"actor":null,"request_id":"0123456789abcdef0123456789abcdef",'
        b'"source":"import","idempotency_key":null,"import_batch":"bench"}}'
    )


def time_copy_postgres(url: str, events: int, tick: Any) -> dict[str, Any]:
    state = sample_state()
    topic = "domain.account:Account.Registered"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE copied (notification_id bigserial PRIMARY KEY, originator_id uuid "
            "NOT NULL, originator_version bigint NOT NULL, topic text, state bytea, "
            "UNIQUE (originator_id, originator_version))"
        )
        started = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cursor,
            cursor.copy(
                "COPY copied (originator_id, originator_version, topic, state) FROM STDIN"
            ) as copy,
        ):
            for n in range(events):
                copy.write_row((uuid.uuid4(), 1, topic, state))
                if n % 10_000 == 9_999:
                    tick(10_000)
        return {"events": events, "seconds": time.perf_counter() - started}


def time_copy_sqlite(path: Path, events: int, tick: Any) -> dict[str, Any]:
    state = sample_state()
    topic = "domain.account:Account.Registered"
    conn = sqlite3.connect(path)
    try:
        conn.execute(
            "CREATE TABLE copied (originator_id TEXT, originator_version INTEGER, topic TEXT, "
            "state BLOB, PRIMARY KEY (originator_id, originator_version))"
        )
        started = time.perf_counter()
        with conn:
            conn.executemany(
                "INSERT INTO copied VALUES (?, ?, ?, ?)",
                ((uuid.uuid4().hex, 1, topic, state) for _ in range(events)),
            )
        tick(events)
        return {"events": events, "seconds": time.perf_counter() - started}
    finally:
        conn.close()


def bench_store(store: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    with ExitStack() as stack, progress() as bar:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crm-bench-imp-")))

        def fresh() -> tuple[dict[str, str], str]:
            if store == "postgres":
                url = stack.enter_context(throwaway_database(postgres_url(args.postgres_url)))
                return store_env(url, ""), url
            sqlite = tmp / f"{uuid.uuid4().hex}.sqlite"
            return store_env(None, str(sqlite)), str(sqlite)

        def ticker(title: str, total: int) -> Any:
            task = bar.add_task(f"{store} · {title}", total=total, note="")
            return lambda n: bar.advance(task, n)

        env, _ = fresh()
        imported = time_import(env, path, args.rows, ticker("import + re-run", 2 * args.rows))
        events = imported["import"]["events"]
        env, _ = fresh()
        saved = time_save(env, events, ticker("save()", events))
        _, target = fresh()
        tick = ticker("COPY", events)
        copied = (
            time_copy_postgres(target, events, tick)
            if store == "postgres"
            else time_copy_sqlite(Path(target), events, tick)
        )
        return {**imported, "save": saved, "copy": copied}


def per_second(figures: dict[str, Any], what: str = "events") -> float:
    seconds: float = figures["seconds"]
    return float(figures[what]) / seconds if seconds > 0 else float("nan")


def run(args: argparse.Namespace) -> int:
    if args.rows < 10:
        raise BenchError("--rows must be >= 10")
    load_before = load_average()
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="crm-bench-imp-") as tmp:
        path = Path(tmp) / "rows.csv"
        write_file(path, args.rows)
        size = os.path.getsize(path)
        for store in args.stores:
            try:
                results[store] = bench_store(store, path, args)
            except ServiceUnavailableError as error:
                skipped[store] = str(error)
                err.print(f"[yellow]skipping {store}:[/yellow] {error}")
    busy = f"; load average {load_before[0]:.1f} before the run" if load_before else ""
    caption = (
        f"{args.rows:,} rows ({size / 1e6:,.0f} MB of CSV). x save() = events/s over "
        f"eventsourcing's save() of {SAVE_BATCH} aggregates per call; x COPY = over raw "
        f"COPY (SQLite: executemany) of as many rows. Target: import >= "
        f"{TARGET_EVENTS_PER_SECOND:,} events/s on PostgreSQL{busy}."
    )
    table = new_table(
        "Chronicle CRM · bulk import",
        ("store · way", "rows", "events", "seconds", "rows/s", "events/s", "x save()", "x COPY"),
        caption,
    )
    for store, result in results.items():
        save_rate, copy_rate = per_second(result["save"]), per_second(result["copy"])
        for way, title in (("import", "import"), ("rerun", "re-run (nothing new)")):
            figures = result[way]
            rate = per_second(figures)
            style = None
            if way == "import" and store == "postgres":
                style = "green" if rate >= TARGET_EVENTS_PER_SECOND else "bold red"
            table.add_row(
                f"{store} · {title}", fmt_int(figures["rows"]), fmt_int(figures["events"]),
                f"{figures['seconds']:.1f}", fmt_rate(per_second(figures, "rows")),
                fmt_rate(rate) if figures["events"] else "-",
                fmt_ratio(ratio(rate, save_rate)) if figures["events"] else "-",
                fmt_ratio(ratio(rate, copy_rate)) if figures["events"] else "-",
                style=style,
            )  # fmt: skip
        for way, title in (("save", f"save() x{SAVE_BATCH}"), ("copy", "COPY")):
            figures = result[way]
            rate = per_second(figures)
            table.add_row(
                f"{store} · {title}", "", fmt_int(figures["events"]),
                f"{figures['seconds']:.1f}", "", fmt_rate(rate),
                fmt_ratio(ratio(rate, save_rate)), fmt_ratio(ratio(rate, copy_rate)),
            )  # fmt: skip
    for store in skipped:
        table.add_row(f"{store} · skipped", *["-"] * 7, style="yellow")
    out.print(table)
    figures = {
        "options": {"rows": args.rows, "save_batch": SAVE_BATCH},
        "target_events_per_second": TARGET_EVENTS_PER_SECOND,
        "load_average_before": load_before,
        "stores": {
            store: {
                way: {**figures, "events_per_second": round(per_second(figures), 1)}
                for way, figures in result.items()
            }
            for store, result in results.items()
        },
        "skipped": skipped,
    }
    path = write_json(NAME, figures, args.json)
    err.print(f"figures written to {path}", highlight=False)
    return 0
