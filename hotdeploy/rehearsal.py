"""Whether a version may go to an environment that requires rehearsal (pure)."""
from __future__ import annotations

from .errors import Refusal


class Unrehearsed(Refusal, PermissionError):
    pass


def rehearsal_gate(app: str, version: str, required: bool, record: dict | None, override: bool) -> str:
    """Return a note for the summary, or raise Unrehearsed."""
    if not required:
        return ""
    if record and record.get("result") == "ok":
        return f"rehearsed ok at {record.get('at')} (flow run {record.get('flow_run')})"
    why = "never rehearsed" if not record else f"its last rehearsal failed ({record.get('reason', 'see the rehearsal run')})"
    if override:
        return f"UNREHEARSED: {why}; deployed with allow_unrehearsed"
    raise Unrehearsed(f"{app} {version}: {why}. This environment requires a passed rehearsal: run the "
                      "rehearsal deployment first, or pass allow_unrehearsed=true to override")
