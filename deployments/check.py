"""Is an app ready for hotdeploy? Said before any build, item by item, with
the lines to add (hotdeploy/appcheck.py; `release` refuses with the same
words).

  python -m deployments.check APP_DIR      exit 1 if anything must change

Needs no Prefect server, no Docker, no AWS: it reads the app's files.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hotdeploy.appcheck import ERROR, OK, WARNING, Finding, check_app

# Directories that are build output or fetched code, never the app's config.
_SKIP = {"_build", "deps", ".git", "node_modules", ".elixir_ls", "_checkouts", "log"}
_TEXT_LIMIT = 256 * 1024


def app_files(app_dir: str | Path) -> dict[str, str]:
    """The app's small text files by path relative to APP_DIR (what
    check_app reads); test/ files by name."""
    root = Path(app_dir)
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in _SKIP for part in rel.parts) or not path.is_file():
            continue
        name = rel.as_posix()
        if path.stat().st_size > _TEXT_LIMIT:
            continue
        try:
            files[name] = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
    return files


_MARK = {ERROR: "✗", WARNING: "!", OK: "✓"}


def render(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"{_MARK[f.level]} {f.item}: {f.text}")
        if f.fix:
            lines.append(f"    -> {f.fix}")
    bad = sum(f.level == ERROR for f in findings)
    warned = sum(f.level == WARNING for f in findings)
    lines.append(f"{bad} to fix, {warned} warning(s)" + ("" if bad else ": ready for `release`"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deployments.check", description=__doc__.splitlines()[0])
    p.add_argument("app_dir", help="the app's source tree (rebar3 project or mix project)")
    args = p.parse_args(argv)
    root = Path(args.app_dir)
    if not root.is_dir():
        print(f"{root} is not a directory", file=sys.stderr)
        return 2
    findings = check_app(app_files(root))
    print(f"{root.resolve()}:")
    print(render(findings))
    return 1 if any(f.level == ERROR for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
