"""Baseline helper: write the appups for a module report (the same pure
planner as the release flow; the baseline measures orchestration, not this)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hotdeploy.appup import parse_modinfo, plan_appups  # noqa: E402

report = parse_modinfo(Path(sys.argv[1]).read_text())
for appup in plan_appups(report.previous, report.apps.get("new", []), report.shipped).appups:
    ebin = Path(sys.argv[2]) / report.src_dirs.get(appup.app, ".") / "ebin"
    ebin.mkdir(parents=True, exist_ok=True)
    (ebin / f"{appup.app}.appup").write_text(appup.render())
