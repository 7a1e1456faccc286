"""tools/bench.py: the combined micro-benchmark report (end to end through its CLI)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import types
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "tools" / "bench.py"


def run_bench(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=timeout)


def test_help_names_no_machine_specific_path() -> None:
    proc = run_bench("--help", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "python tools/bench.py [--quick]" in proc.stdout
    # No interpreter of one machine (a venv path, /usr/bin/python3, ...): only the bare command.
    assert not [line for line in proc.stdout.splitlines() if "bin/python" in line or "/work/" in line], proc.stdout


def test_unknown_benchmark_is_a_one_line_error() -> None:
    proc = run_bench("--only", "search,nope", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "bench: error: unknown benchmark 'nope' (choose from search, replay, learner, envs)"]
    assert "=====" not in proc.stdout  # rejected before any benchmark ran


def test_a_failing_benchmark_is_not_swallowed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.syspath_prepend(str(BENCH.parent))
    import bench

    def broken(quick: bool) -> list[tuple[str, float, str]]:
        raise RuntimeError("measurement broke")

    # bench imports bench_<name> on demand, so a stand-in module in sys.modules is what it runs.
    monkeypatch.setitem(sys.modules, "bench_search", types.SimpleNamespace(run=broken))
    out = tmp_path / "bench.json"
    with pytest.raises(RuntimeError, match="measurement broke"):
        bench.main(["--only", "search", "--json", str(out)])
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_quick_search_and_replay_report_and_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = run_bench("--quick", "--only", "search,replay", "--json", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]

    # Each benchmark's own tables come first, then the combined report.
    assert "ReferenceTree vs CTree" in proc.stdout and "zarr frames compression" in proc.stdout
    report = proc.stdout.split("===== combined report =====", 1)[1].strip().splitlines()
    assert report[0].startswith("# machine: ") and "torch " in report[0] and "device " in report[0]
    assert report[1].split() == ["benchmark", "measurement", "value", "unit"]
    rows = report[2:]
    assert {line.split()[0] for line in rows} == {"search", "replay"}

    data = json.loads(out.read_text())
    assert data["quick"] is True and data["machine"]["cpu_cores"] >= 1
    assert {row["benchmark"] for row in data["rows"]} == {"search", "replay"}
    assert len(data["rows"]) == len(rows)
    for row in data["rows"]:
        assert math.isfinite(row["value"]) and row["value"] > 0, row
        assert row["measurement"] and row["unit"], row
    assert not list(tmp_path.glob(".bench.json.*"))  # no temp file left behind
