"""Step timings and the summaries shown as Prefect artifacts."""
from __future__ import annotations

import time
from contextlib import contextmanager


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
            f"- previous: {summary['previous'] or 'none (first release, no relup)'}\n"
            f"- sha256: `{summary['sha256']}`\n"
            f"- builder image: {summary['builder_image']} "
            f"({'built' if summary['builder_image_built'] else 'cached'})\n")
    if summary.get("pointer") not in (None, summary["version"]):
        head += (f"- the VERSION pointer stays on {summary['pointer']} (another release moved it past this "
                 "one meanwhile); deploy this version by name\n")
    if summary.get("appup"):
        head += "- generated appup instructions:\n" + "".join(f"  - `{i}`\n" for i in summary["appup"])
    steps = markdown_table(["step", "seconds"], [[k, v] for k, v in summary["timings"].items()])
    return head + "\n" + steps + "\n"
