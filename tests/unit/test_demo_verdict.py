"""The demo's verdict: every shortfall named in one line, none when it kept
its promise (a CI log that cuts the report still shows why)."""
from demo.__main__ import why_failed


def _report(**changes) -> dict:
    host = {"environment": "production", "host": "p-1", "version_before": "1", "version_after": "2",
            "pid_before": 10, "pid_after": 10}
    report = {"steps": [{"deployment": "ship/staging", "exit_code": 0, "line": "shipped", "as_expected": True}],
              "requests": {"sent": 500, "failed": 0, "errors": []},
              "hosts": [host],
              "deployments": [{"deployment": "ship/staging", "state": "Completed", "ok": True}],
              "restart": {"hosts": [
                  {"environment": "staging", "host": "s-1", "result": "restarted", "version_before": "2",
                   "version_after": "3", "pid_before": 20, "pid_after": 21, "failed": 40},
                  {**host, "version_before": "2", "version_after": "2", "result": "-", "failed": 0}]}}
    report.update(changes)
    return report


def test_a_demo_that_kept_its_promise_has_no_reason():
    assert why_failed(_report()) == []


def test_each_shortfall_is_named():
    bad = _report(
        requests={"sent": 500, "failed": 2, "errors": ["198.18.0.103: ConnectionResetError: reset"]},
        hosts=[{"environment": "production", "host": "p-1", "version_before": "1", "version_after": "1",
                "pid_before": 10, "pid_after": 11}],
        deployments=[{"deployment": "status/staging", "state": "Failed", "ok": False}])
    bad["steps"][0].update(exit_code=1, as_expected=False, line="refused")
    bad["restart"]["hosts"][0].update(result="hot", pid_after=20)
    bad["restart"]["hosts"][1].update(failed=3)
    reasons = why_failed(bad)
    assert reasons == [
        "ship/staging: exit 1, not as expected: refused",
        "2 of 500 requests failed during the hot deploys, first: 198.18.0.103: ConnectionResetError: reset",
        "production p-1: pid 10 -> 11, a hot deploy keeps it",
        "production p-1: still on 1",
        "status/staging: last run Failed",
        "restart story, s-1: hot, pid 20 -> 20, 2 -> 3",
        "restart story, p-1 (not deployed): 3 failed requests, pid 10 -> 10",
    ]
