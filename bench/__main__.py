"""``python -m bench <name> [options]``: run one benchmark of the registry."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from typing import Protocol, cast

from bench.common import BenchError, err

#: Benchmark name -> module. A module listed here provides what :class:`Benchmark` says.
REGISTRY: dict[str, str] = {
    "commands": "bench.commands",
    "import": "bench.importing",
    "projections": "bench.projections",
    "records": "bench.records",
    "relay": "bench.relay",
    "replay": "bench.replay",
}


class Benchmark(Protocol):
    SUMMARY: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of Chronicle CRM. Each prints a table with a ratio against "
        "a baseline measured in the same run and writes its figures as JSON "
        "(bench/results/<name>-<timestamp>.json unless --json PATH).",
    )
    names = top.add_subparsers(dest="benchmark", metavar="<name>", required=True)
    for name, module in REGISTRY.items():
        benchmark = cast("Benchmark", importlib.import_module(module))
        sub = names.add_parser(
            name,
            help=benchmark.SUMMARY,
            description=cast("str | None", getattr(benchmark, "__doc__", None)),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        benchmark.configure(sub)
        sub.set_defaults(run=benchmark.run)
    return top


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # A benchmark starts servers in their own sessions and databases: SIGTERM, like
    # Ctrl-C, must unwind through the ``finally`` blocks that stop and drop them.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        status: int = args.run(args)
    except BenchError as error:
        err.print(f"[bold red]error:[/bold red] {error}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
