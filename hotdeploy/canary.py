"""The canary verdict: canary hosts against baseline hosts (still on the old
version, sampled in the same window by the same probes), within the
environment's limits (pure).

Each host's signals are what the node program sampled during its soak (or,
on a baseline host, its observe window): probes from inside the node
(failures, p50/p99), log events, child restarts, process count, the longest
message queue, memory, run queue.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class Limits:
    latency_ratio: float = 2.0         # canary p50 at most this times the baseline's...
    latency_slack_ms: float = 5.0      # ...or this much above it, whichever is larger (1 ms is noise);
                                       # p99 only for gross regressions (a soak's few probes on a busy host:
                                       # one slow sample moves it): twice the ratio, ten times the slack
    error_rate_diff: float = 0.02      # canary failed/probes at most this above the baseline's
    process_growth: float = 0.25       # canary process count growth at most this above the baseline's
    min_probes: int = 30               # fewer on either side: no pass, inconclusive (with 10, a release failing
                                       # one request in ten passed a third of the time: 0.9^10 = 0.35; with 30,
                                       # 0.04). A fail needs less: see judge
    p50_min_probes: int = 5            # p50 judged with this many probes a side: a slow release makes few
    p99_min_probes: int = 300          # p99 judged only with this many probes a side: with fewer it is one
                                       # of the two or three slowest probes (a GC pause, a descheduled moment)


@dataclass
class Verdict:
    outcome: str                                        # PASS | FAIL | INCONCLUSIVE
    reasons: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)         # side -> aggregated signals (chart-ready)

    def line(self) -> str:
        return f"canary {self.outcome}" + (f": {'; '.join(self.reasons)}" if self.reasons else "")


def aggregate(signals: list[dict]) -> dict:
    """The hosts of one side as one: probes and failures summed, the worst
    p99, the sums of events and restarts, process growth, the longest queue."""
    signals = [s for s in signals if isinstance(s, dict)]
    probes = sum(s.get("probes") or 0 for s in signals)
    failed = sum(s.get("failed") or 0 for s in signals)
    p99 = [s["p99_ms"] for s in signals if s.get("p99_ms") is not None]
    p50 = [s["p50_ms"] for s in signals if s.get("p50_ms") is not None]
    start = sum(s.get("processes_start") or 0 for s in signals)
    end = sum(s.get("processes_end") or 0 for s in signals)
    return {"hosts": len(signals), "probes": probes, "failed": failed,
            "error_rate": round(failed / probes, 4) if probes else None,
            "p50_ms": max(p50) if p50 else None, "p99_ms": max(p99) if p99 else None,
            "error_events": sum(s.get("error_events") or 0 for s in signals),
            "warning_events": sum(s.get("warning_events") or 0 for s in signals),
            "child_restarts": sum(s.get("child_restarts") or 0 for s in signals),
            "process_growth": round((end - start) / start, 4) if start else None,
            "max_queue": max((s.get("max_queue") or 0 for s in signals), default=0),
            "memory_end_mb": max((s.get("memory_end_mb") or 0 for s in signals), default=0)}


def judge(canary: list[dict], baseline: list[dict], limits: Limits = Limits()) -> Verdict:
    """PASS, FAIL (with every limit crossed, in words and figures) or
    INCONCLUSIVE (no baseline, or too few probes to pass).

    Evidence is asymmetric: failed probes or a slower median are seen in a
    few probes (a slow release makes few: each probe waits for it), and a
    fail is sampled again before it takes the canary back; but a pass needs
    min_probes a side, or a release failing one request in ten passes when
    its few probes happen to miss the failures."""
    c, b = aggregate(canary), aggregate(baseline)
    figures = {"canary": c, "baseline": b, "limits": limits.__dict__}
    if not c["hosts"] or not b["hosts"]:
        return Verdict(INCONCLUSIVE, [f"no {'baseline' if c['hosts'] else 'canary'} host was sampled"], figures)
    reasons = _crossed(c, b, limits)
    if reasons:
        return Verdict(FAIL, reasons, figures)
    if c["probes"] < limits.min_probes or b["probes"] < limits.min_probes:
        return Verdict(INCONCLUSIVE, [f"too few probes to pass ({c['probes']} canary, {b['probes']} baseline; "
                                      f"{limits.min_probes} needed each: a longer soak or a shorter "
                                      f"canary_probe_ms gives more)"], figures)
    return Verdict(PASS, [], figures)


def _crossed(c: dict, b: dict, limits: Limits) -> list[str]:
    """Every limit the canary side C crosses against the baseline B."""
    reasons = []
    if c["probes"] and b["probes"] and c["error_rate"] - b["error_rate"] > limits.error_rate_diff:
        reasons.append(f"errors: {c['failed']} of {c['probes']} probes failed ({c['error_rate']:.1%}) against "
                       f"{b['failed']} of {b['probes']} ({b['error_rate']:.1%}) on the baseline (limit "
                       f"+{limits.error_rate_diff:.1%})")
    for q, ratio, slack in (("p50", limits.latency_ratio, limits.latency_slack_ms),
                            ("p99", 2 * limits.latency_ratio, 10 * limits.latency_slack_ms)):
        mine, theirs = c[f"{q}_ms"], b[f"{q}_ms"]
        if mine is None or theirs is None or \
                min(c["probes"], b["probes"]) < (limits.p99_min_probes if q == "p99" else limits.p50_min_probes):
            continue
        allowed = max(theirs * ratio, theirs + slack)
        if mine > allowed:
            reasons.append(f"latency: {q} {mine} ms against {theirs} ms on the baseline (limit {allowed:.1f} ms: "
                           f"{ratio:g}x or +{slack:g} ms)")
    if c["child_restarts"] > b["child_restarts"]:
        reasons.append(f"children restarted: {c['child_restarts']} against {b['child_restarts']} on the baseline")
    if c["error_events"] > b["error_events"]:
        reasons.append(f"error events: {c['error_events']} against {b['error_events']} on the baseline")
    if c["process_growth"] is not None and b["process_growth"] is not None and \
            c["process_growth"] - b["process_growth"] > limits.process_growth:
        reasons.append(f"processes: +{c['process_growth']:.0%} during the soak against "
                       f"{b['process_growth']:+.0%} on the baseline (limit +{limits.process_growth:.0%})")
    return reasons


def table(verdict: Verdict) -> list[dict]:
    """The figures side by side, for the run's artifact."""
    c, b = verdict.figures.get("canary", {}), verdict.figures.get("baseline", {})
    keys = ["hosts", "probes", "failed", "error_rate", "p50_ms", "p99_ms", "error_events", "warning_events",
            "child_restarts", "process_growth", "max_queue", "memory_end_mb"]
    return [{"signal": k, "canary": c.get(k), "baseline": b.get(k)} for k in keys]
