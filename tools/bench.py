"""All micro-benchmarks in one run, then one combined report of their headline figures.

    python tools/bench.py [--quick] [--only search,replay,learner,envs] [--json PATH]

Runs tools/bench_<name>.py's run() for each selected benchmark (each prints its own tables, as
its CLI does), then prints a header with the machine's facts and a table of headline figures:
  search   root-simulations/s of the CTree (warm driver and bare select+backup), ReferenceTree, speed-up
  replay   hot-tier append steps/s, sample + full learner context batches/s, append + zarr steps/s
  learner  updates/s (and samples/s) of the learner thread vs a naive serial loop, at B=256
  envs     agent steps/s of raw ALE v5 vs our AtariGame (1 core), raw vs EnvPool in 2 processes
--json PATH writes the machine facts and the rows atomically. A benchmark that raises is not
caught: its traceback ends the run with a non-zero exit.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from pathlib import Path
from typing import NamedTuple, NoReturn

from ezero_async.tracking.atomic import write_text_atomic

BENCHMARKS = ("search", "replay", "learner", "envs")


class Headline(NamedTuple):
    benchmark: str
    measurement: str
    value: float
    unit: str


def machine_facts() -> dict[str, object]:
    import torch  # here, not at the top, so a bad --only is rejected without the ~2 s torch import

    from ezero_async.tracking.machine import usable_cores

    usable = usable_cores()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"cpu_cores": os.cpu_count(), "cpu_cores_usable": usable, "torch": torch.__version__, "device": device}


def fail(message: str) -> NoReturn:
    # One line, not argparse's usage + error pair, so scripts can show it as is.
    print(f"bench: error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_only(text: str | None) -> list[str]:
    """Selected names in the order given, duplicates dropped; exits 2 on an unknown name."""
    if text is None:
        return list(BENCHMARKS)
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    choices = ", ".join(BENCHMARKS)
    for name in names:
        if name not in BENCHMARKS:
            fail(f"unknown benchmark {name!r} (choose from {choices})")
    if not names:
        fail(f"--only selects no benchmark (choose from {choices})")
    return names


def run_benchmark(name: str, quick: bool) -> list[Headline]:
    # Imported on demand so that e.g. --only search needs neither ALE nor the learner's imports.
    module = importlib.import_module(f"bench_{name}")
    return [Headline(name, measurement, float(value), unit) for measurement, value, unit in module.run(quick=quick)]


def format_value(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def report(facts: dict[str, object], rows: list[Headline], quick: bool) -> str:
    cores = f"{facts['cpu_cores']} CPU cores"
    if facts["cpu_cores_usable"] != facts["cpu_cores"]:
        cores += f" ({facts['cpu_cores_usable']} usable)"
    lines = [f"# machine: {cores}, torch {facts['torch']}, device {facts['device']}"
             f"{', --quick sizes' if quick else ''}"]
    values = [format_value(r.value) for r in rows]
    w_bench = max(len("benchmark"), *(len(r.benchmark) for r in rows))
    w_meas = max(len("measurement"), *(len(r.measurement) for r in rows))
    w_value = max(len("value"), *(len(v) for v in values))
    lines.append(f"{'benchmark':<{w_bench}}  {'measurement':<{w_meas}}  {'value':>{w_value}}  unit")
    for row, value in zip(rows, values):
        lines.append(f"{row.benchmark:<{w_bench}}  {row.measurement:<{w_meas}}  {value:>{w_value}}  {row.unit}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="each benchmark's --quick sizes")
    parser.add_argument("--only", metavar="NAMES", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the report's rows here as JSON")
    args = parser.parse_args(argv)
    names = parse_only(args.only)

    rows: list[Headline] = []
    for name in names:
        print(f"\n===== {name} =====", flush=True)
        rows += run_benchmark(name, args.quick)
        sys.stdout.flush()  # keep each benchmark's output ahead of the next one's stderr progress

    facts = machine_facts()
    print("\n===== combined report =====")
    print(report(facts, rows, args.quick))
    if args.json is not None:
        # allow_nan=False: a non-finite figure is a broken measurement, and NaN is not JSON.
        text = json.dumps({"machine": facts, "quick": args.quick, "rows": [r._asdict() for r in rows]},
                          indent=2, allow_nan=False)
        write_text_atomic(args.json, text + "\n")


if __name__ == "__main__":
    main()
