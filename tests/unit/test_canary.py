"""The canary verdict (pure): the same probes on canary and baseline hosts."""
from hotdeploy.canary import FAIL, INCONCLUSIVE, PASS, Limits, judge, table


def s(probes=100, failed=0, p50=1.0, p99=2.0, restarts=0, errors=0, procs=(300, 300)):
    return {"probes": probes, "failed": failed, "p50_ms": p50, "p99_ms": p99, "child_restarts": restarts,
            "error_events": errors, "warning_events": 0, "processes_start": procs[0], "processes_end": procs[1],
            "max_queue": 0, "memory_end_mb": 40.0}


def test_a_release_that_behaves_like_the_old_one_passes():
    v = judge([s(p99=2.5)], [s(), s()])
    assert v.outcome == PASS and v.reasons == [] and v.line() == "canary pass"


def test_five_times_slower_fails_on_latency():
    v = judge([s(p50=26.0, p99=27.0)], [s(p50=1.0, p99=1.8)])
    assert v.outcome == FAIL
    assert v.reasons == ["latency: p50 26.0 ms against 1.0 ms on the baseline (limit 6.0 ms: 2x or +5 ms)"]
    gross = judge([s(probes=300, p50=1.0, p99=120.0)], [s(probes=300, p50=1.0, p99=10.0)])
    assert gross.reasons == ["latency: p99 120.0 ms against 10.0 ms on the baseline (limit 60.0 ms: 4x or +50 ms)"]


def test_p99_of_a_short_soak_is_one_probe_and_is_not_judged():
    """Seen in CI (three sessions on two cores): 67.4 ms against 3.0 ms at
    p99 over 20 probes a side, the medians alike."""
    few = Limits(min_probes=10)
    assert judge([s(probes=20, p50=2.0, p99=67.4)], [s(probes=20, p50=1.8, p99=3.0)], few).outcome == PASS
    # with a canary window's 20 ms probes, 100 a side: p99 is the second slowest, still not judged
    assert judge([s(p50=2.0, p99=67.4)], [s(p50=1.8, p99=3.0)]).outcome == PASS


def test_slow_samples_on_a_busy_host_are_not_a_slower_release():
    """Seen in the demo under load: 31.9 ms against 9.6 ms at p99, the median
    the same."""
    assert judge([s(p50=3.0, p99=31.9)], [s(p50=2.8, p99=9.6)]).outcome == PASS


def test_one_error_in_ten_fails_on_errors():
    v = judge([s(probes=20, failed=2)], [s(probes=40, failed=0)])
    assert v.outcome == FAIL and v.reasons[0].startswith("errors: 2 of 20 probes failed (10.0%) against 0 of 40")


def test_restarts_events_and_process_leaks_fail():
    v = judge([s(restarts=1, errors=2, procs=(300, 420))], [s(procs=(300, 303))])
    assert [r.split(":")[0] for r in v.reasons] == ["children restarted", "error events", "processes"]


def test_without_a_baseline_or_enough_probes_it_cannot_tell():
    assert judge([s()], []).outcome == INCONCLUSIVE
    v = judge([s(probes=3)], [s()], Limits(min_probes=10))
    assert v.outcome == INCONCLUSIVE and "too few probes to pass" in v.reasons[0]


def test_twenty_clean_probes_do_not_pass_a_canary():
    """With the old default of 10 probes and a 100 ms pace, a release failing
    one request in ten passed one canary in three: no failure among its
    probes. Passing takes 30 a side (0.9^30: 4 %)."""
    assert Limits().min_probes == 30
    assert judge([s(probes=20)], [s(probes=200)]).outcome == INCONCLUSIVE
    assert judge([s(probes=30)], [s(probes=200)]).outcome == PASS


def test_a_fail_needs_fewer_probes_than_a_pass():
    # a release 50x slower makes few probes in its window: that is the finding, not a lack of evidence
    slow = judge([s(probes=6, p50=500.0, p99=510.0)], [s(probes=200, p50=10.0, p99=12.0)])
    assert slow.outcome == FAIL and slow.reasons[0].startswith("latency: p50 500.0 ms"), slow.reasons
    errors = judge([s(probes=12, failed=2)], [s(probes=200)])
    assert errors.outcome == FAIL and errors.reasons[0].startswith("errors: 2 of 12"), errors.reasons
    # below 5 probes a side a median is one or two samples: not judged
    assert judge([s(probes=3, p50=500.0, p99=500.0)], [s(p50=10.0)]).outcome == INCONCLUSIVE


def test_the_figures_side_by_side():
    rows = table(judge([s(p99=3.0)], [s(), s(p99=4.0)]))
    assert {"signal": "p99_ms", "canary": 3.0, "baseline": 4.0} in rows
    assert {"signal": "hosts", "canary": 1, "baseline": 2} in rows


def test_only_a_host_the_release_sent_back_quarantines_the_version():
    """A full disk at permanence sends the host back too, but that is the
    host's fault: freeing the disk and running again must not be refused."""
    from types import SimpleNamespace as H
    from hotdeploy.quarantine import reason_from_hosts
    disk = H(host="a", result="rolled back", step="permanent", detail="disk full in /srv/app")
    gate = H(host="b", result="rolled back", step="gate", detail="gate: / answered 500")
    down = H(host="c", result="failed", step=None, detail="unreachable")
    assert reason_from_hosts([disk, down]) is None
    assert reason_from_hosts([disk, gate, down]) == "b: gate: / answered 500"
