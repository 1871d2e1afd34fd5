"""Step timings and the summaries shown as Prefect artifacts."""
from __future__ import annotations

import re
import time
from contextlib import contextmanager


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key from PARTS joined by dashes: Prefect takes only
    lowercase letters, digits and dashes, and an EC2 tag value may hold
    `. _ : / @ + =` and spaces (`prod.eu-1` makes `prod-eu-1`)."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


class StepClock:
    """Wall time per pipeline step, in the order the steps ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str):
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - start, 3)


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def release_summary_markdown(summary: dict) -> str:
    head = (f"### {summary['release']} {summary['version']}\n\n"
            f"- relup up from and down to: {', '.join(summary.get('upgrade_from') or []) or 'nothing (first release)'}"
            f" (upgrade package for hosts on {summary['previous'] or '-'})\n"
            f"- sha256: `{summary['sha256']}`\n"
            f"- builder image: {summary['builder_image']} "
            f"({'built' if summary['builder_image_built'] else 'cached'})\n")
    if summary.get("reused"):
        head += (f"- **not rebuilt**: commit {summary.get('git_commit')} was released already as this version "
                 "(rebuild=True builds it again)\n")
    if summary.get("pointer") not in (None, summary["version"]) and not summary.get("reused"):
        head += (f"- the VERSION pointer stays on {summary['pointer']} (another release moved it past this "
                 "one meanwhile); deploy this version by name\n")
    for vsn, edge in sorted((summary.get("edges") or {}).items()):
        if edge.get("strategy") == "restart":
            head += f"- **from {vsn}: by restart**: {'; '.join(edge.get('reasons') or [])}\n"
        else:
            head += f"- from {vsn}: hot\n"
    for vsn, why in (summary.get("left_out") or {}).items():
        head += f"- **no relup from {vsn}**: {why}\n"
    if summary.get("appup"):
        head += "- generated appup instructions:\n" + "".join(f"  - `{i}`\n" for i in summary["appup"])
    steps = markdown_table(["step", "seconds"], [[k, v] for k, v in summary["timings"].items()])
    return head + "\n" + steps + "\n"


def store_status_markdown(app: str, pointer: str | None, published: list[str], incomplete: dict[str, list[str]],
                          records: dict[str, dict], shown: int = 10, quarantined: dict[str, dict] | None = None) -> str:
    """What the store knows about APP: the pointer, the newest published
    versions, interrupted publishes, and what each environment runs."""
    out = [f"### {app} in the store", "",
           f"- VERSION pointer: {pointer or 'none'}",
           f"- published ({len(published)}): " + (", ".join(published[-shown:][::-1]) or "none")
           + (" ..." if len(published) > shown else "")]
    if incomplete:
        out.append("- **incomplete** (interrupted publishes, ignored by every flow): " +
                   "; ".join(f"{v} (missing {', '.join(m)})" for v, m in incomplete.items()))
    for vsn, why in (quarantined or {}).items():
        out.append(f"- **quarantined** {vsn}: {why.get('reason', '?')} ({why.get('environment')}, run "
                   f"{why.get('flow_run')}, {why.get('at')}): no deploy takes it")
    for name, record in sorted(records.items()):
        rows = [[h.get("host"), h.get("address"), h.get("running"), h.get("permanent"), h.get("previous"),
                 h.get("at"), h.get("flow"), h.get("note", "")] for h in record.get("hosts", [])
                if isinstance(h, dict)]
        out += ["", f"#### environment {name} (recorded {record.get('updated_at')} by "
                    f"{(record.get('updated_by') or {}).get('flow')})", "",
                markdown_table(["host", "address", "running", "permanent", "ran before", "read at", "by", "note"],
                               rows)]
    return "\n".join(out) + "\n"


_FAILURE = re.compile(r"^\s{0,4}\d+\) (?:test )?(.+?)(?:: module '.*')?\s*$")


def failing_tests(lines: list[str]) -> list[str]:
    """The failing tests a test run names: eunit's `  1) mod:test/0: module 'mod'`
    and ExUnit's `  1) test greets (MyTest)` after its Failures header."""
    found, listing = [], False
    for line in lines:
        if line.strip() in ("Failures:",) or line.startswith("  1) test "):
            listing = True
        if listing:
            m = _FAILURE.match(line)
            if m:
                found.append(m.group(1))
    return found


def ship_summary_markdown(built: dict, environment: str, rows: list[dict], links: dict[str, str],
                          failure: str | None) -> tuple[str, str]:
    """The ship run's own summary (what a CI log and the UI show first) and
    its one line."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    hosts = ", ".join(f"{n} {result}" for result, n in sorted(counts.items())) or "no host"
    reused = " (released already, not rebuilt)" if built.get("reused") else ""
    line = (f"shipped {built['release']} {built['version']}{reused} to {environment}: {hosts}" if not failure else
            f"{built['release']} {built['version']}{reused} released; deploy to {environment} failed: {failure}")
    table = markdown_table(["host", "from", "to", "result", "detail"],
                           [[r["host"], r["from_version"] or "-", r["to_version"], r["result"], r["detail"]]
                            for r in rows])
    text = (f"### {line}\n\n- git commit: {built.get('git_commit') or '-'}\n"
            f"- relup from: {', '.join(built.get('upgrade_from') or []) or 'nothing (first release)'}\n" +
            "".join(f"- {name} run: {link}\n" for name, link in links.items()) + "\n" + table + "\n")
    return text, line


def outcome_lines(outcomes: list, names_shown: int = 8) -> list[str]:
    """The run's closing log lines, one per distinct (from, to, result,
    detail): hosts that ended alike share a line, named up to NAMES_SHOWN
    (every host is in the summary table; a line per host cost the server at
    a large fleet and repeated the hosts' own lines). In first-seen order."""
    groups: dict[tuple, list[str]] = {}
    for o in outcomes:
        groups.setdefault((o.from_version or "nothing", o.to_version, o.result, o.detail), []).append(o.host)
    lines = []
    for (before, after, result, detail), hosts in groups.items():
        who = hosts[0] if len(hosts) == 1 else (
            f"{len(hosts)} hosts ({', '.join(hosts[:names_shown])}"
            + (f" and {len(hosts) - names_shown} more" if len(hosts) > names_shown else "") + ")")
        lines.append(f"{who}: {before} -> {after}: {result} ({detail})")
    return lines
