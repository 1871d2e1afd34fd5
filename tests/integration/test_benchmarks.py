"""Keeps the benchmark from rotting: runs it with the smallest sizes and checks
that it measured each thing beside its baseline. No timing is asserted."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration]


def test_benchmark_runs_and_reports_each_figure_beside_its_baseline(docker_engine, tmp_path):
    """--quick: each part once (its Elixir ship is the Elixir tests' own)."""
    out = tmp_path / "bench"
    cp = subprocess.run([sys.executable, "-m", "benchmarks.run", "--sizes", "1", "--quick", "--out", str(out)],
                        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results["pipeline"]["ours"]) == set(results["pipeline"]["baseline"])
    assert "ours_elixir" not in results["pipeline"], "--quick ships no Elixir app"
    [one] = results["scaling"]
    for key in ("ours_s", "sequential_ssh_s", "xargs_parallel_s", "deployer_peak_rss_mb", "prefect_server_rss_mb",
                "host_cpu_s_per_host", "xargs_parallel_host_cpu_s_per_host"):
        assert one[key] > 0, key
    assert one["sent_kb_per_host"] < 1024, "a host on the previous release gets the upgrade package"
    assert {t["figure"] for t in results["targets"]} and all("target" in t for t in results["targets"])
    assert one["load_during_upgrade"]["failed"] == 0
    assert one["load_during_upgrade"]["sent"] > 0 and one["load_without_upgrade"]["sent"] > 0
    restart = results["restart"]
    assert restart["hosts"] == 1 and restart["ours_s"] > 0 and restart["xargs_s"] > 0
    assert restart["ours_results"] == ["restarted"] and restart["ours_down_max_s"] > 0
    runs = results["deployment_run"]
    assert runs["status_watch_s"] > 0 and runs["refusal_watch_s"] > 0 and runs["status_in_process_s"] > 0
    assert runs["status_run_s"] > 0 and runs["refusal_run_s"] > 0
    assert runs["target_s"] == 5.0 and len(runs["status_watch_all_s"]) == runs["repeats"]
    assert runs["plain_status_watch_s"] > 0 and runs["plain_refusal_run_s"] > 0, "Prefect's own worker beside ours"
    md = (out / "results.md").read_text()
    assert "| step | ours (s) | baseline script (s) |" in md and "### Against the targets" in md
    assert "| run | worker | command | wall (s), median |" in md and "`python -m deployments.run NAME`" in md
    assert "`python -m deployments.worker`" in md and "`prefect worker start --type process`" in md


def test_no_load_benchmark_reports_prefects_floor_beside_ours(docker_engine, tmp_path):
    """--no-load at one host: ours, xargs -P and Prefect's floor (a task run
    per host and nothing else), each with its fixed cost and CPU per host."""
    out = tmp_path / "bench"
    cp = subprocess.run([sys.executable, "-m", "benchmarks.run", "--no-load", "--light-hosts", "--sizes", "1",
                         "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    [one] = json.loads((out / "results.json").read_text())["scaling_no_load"]
    assert one["results"] == ["upgraded"]
    for key in ("ours_s", "xargs_parallel_s", "fixed_cost_s", "server_cpu_s_per_host", "deployer_cpu_s_per_host",
                "prefect_floor_s", "prefect_floor_fixed_cost_s", "prefect_floor_server_cpu_s_per_host",
                "prefect_floor_deployer_cpu_s_per_host"):
        assert one[key] is not None and one[key] >= 0, key
    assert "Prefect's floor" in cp.stdout
