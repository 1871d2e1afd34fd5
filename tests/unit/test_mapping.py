"""What every host's task run gets alike is not walked by Prefect for each
host: a plan holds every host's record entry, so walking it per host grew
with the square of the fleet."""
from __future__ import annotations

import prefect.utilities.engine as engine
from prefect import unmapped
from prefect.utilities.engine import collect_task_run_inputs_sync, resolve_inputs_sync

from flows.mapping import alike


def _visits(monkeypatch, parameters: dict) -> int:
    seen = []
    real = engine.get_state_for_result
    monkeypatch.setattr(engine, "get_state_for_result", lambda obj: seen.append(obj) or real(obj))
    collect_task_run_inputs_sync(parameters)      # what the task engine does for each task run
    return len(seen)


def test_a_plan_alike_for_every_host_reaches_the_task_whole_and_unwalked(monkeypatch):
    record = {f"hd-{i}": {"host": f"hd-{i}", "version": "1.0.0", "previous": "0.9.0"} for i in range(128)}
    plan = {"version": "1.0.1", "recorded": record}
    walked = _visits(monkeypatch, {"plan": unmapped(plan).unwrap()})
    assert walked > 128 * 3, "Prefect walks a plain parameter to its leaves"
    given = {"plan": alike(plan).unwrap()}      # what map hands each task run
    assert _visits(monkeypatch, given) <= 2
    assert resolve_inputs_sync(given)["plan"] is plan
