"""Is an app ready for hotdeploy? Said before any build, item by item, with
the lines to add (hotdeploy/appcheck.py; `release` refuses with the same
words).

  python -m deployments.check APP_DIR          exit 1 if anything must change
  python -m deployments.check APP_DIR --boot   then build it, boot it, gate it

Needs no Prefect server, no Docker, no AWS: it reads the app's files. With
--boot it also needs the Docker engine: the release is built in the app's
builder image, installed in a container of it as on a host (first boot,
daemon) and asked by the node program's gate, as a deploy asks it, with the
endpoint settings given (an environment block's defaults otherwise).
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


def _default(field: str):
    from blocks.environment import DeployEnvironment
    return DeployEnvironment.model_fields[field].default


def boot(app_dir: Path, health, runtime_config: str, timeout_s: float, soak_s: float) -> list[Finding]:
    """Build APP_DIR's release (a first release: no relup) in its builder
    image, install it in a container as provisioning installs it on a host,
    and ask its gate with HEALTH: a finding per step."""
    from prefect.logging import disable_run_logger
    from prefect_docker import DockerHost

    from hotdeploy import agent
    from hotdeploy.errors import Refusal
    from hotdeploy.versions import next_version
    from tasks.container import (BOOT_ROOT, ContainerFailed, boot_in_container, build_release, ensure_builder_image,
                                 inspect_modules)
    from tasks.nodeprogram import node_program
    from tasks.workspace import describe_app, prepare_workspace, remove_workspace
    from datetime import datetime, timezone

    vsn = str(next_version(datetime.now(timezone.utc), []))
    with disable_run_logger():     # the tasks' own functions, outside any run: no Prefect server needed
        try:
            app = describe_app(app_dir)
        except Refusal as e:
            return [Finding(ERROR, "build", str(e))]
        engine = DockerHost()
        workspace = prepare_workspace.fn(app)
        try:
            image = ensure_builder_image.fn(app.dockerfile, engine)
            inspect_modules.fn(engine, image, workspace, app.project, vsn, [])
            tarball = build_release.fn(engine, image, workspace, app.project, vsn, [])
            found = [Finding(OK, "build", f"{app.release} {vsn} built in {image.tag}")]
            gate = agent.Gate(health, timeout_s, soak_s, 60)
            program = node_program()
            steps = boot_in_container(
                engine, image, tarball, app.release, runtime_config,
                first_boot=agent.program(agent.call_params("first_boot", BOOT_ROOT, app.release, vsn=vsn), program),
                gate=agent.program(agent.call_params("gate", BOOT_ROOT, app.release, vsn=vsn, **gate.as_params(),
                                                     probe_path=health.path or ""), program),
                tries=int(timeout_s * 5))
        except ContainerFailed as e:
            return [Finding(ERROR, "build", str(e))]
        finally:
            remove_workspace.fn(workspace)
    return found + boot_findings(steps, health)


def boot_findings(steps: dict[str, str], health) -> list[Finding]:
    """What boot_in_container's steps printed, as findings: the first failing
    step says why, in the node program's words."""
    from hotdeploy import agent

    def answer(step: str) -> dict:
        try:
            return agent.parse_answer(steps.get(step, ""))
        except Exception:     # no answer at all: what the step printed says why
            return {"result": "failed", "detail": steps.get(step, "").strip()[-1500:] or "no output"}
    first = answer("first_boot")
    if first.get("result") != "done":
        return [Finding(ERROR, "first boot", first.get("detail", "failed"))]
    if steps.get("start"):
        return [Finding(ERROR, "start", "the release did not start as a daemon:\n" + steps["start"][-1500:])]
    booted = Finding(OK, "boot", "first boot and daemon start as on a host")
    gate = answer("gate")
    if gate.get("result") != "done":
        return [booted, Finding(ERROR, "gate", f"{health.describe()} on port {health.port}: {gate.get('detail', 'failed')}",
                        "make the app answer so, or set the environment block's app_port, health_path, "
                        "health_body and health_match to what it answers (no health_path: the node-only gate)")]
    return [booted, Finding(OK, "gate", f"{health.describe()} on port {health.port}: passed")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deployments.check", description=__doc__.splitlines()[0])
    p.add_argument("app_dir", help="the app's source tree (rebar3 project or mix project)")
    p.add_argument("--boot", action="store_true",
                   help="also build the release, boot it in a container and ask its gate (needs Docker)")
    p.add_argument("--app-port", type=int, default=_default("app_port"))
    p.add_argument("--health-path", default=_default("health_path"), help="empty: the node-only gate")
    p.add_argument("--health-status", type=int, default=_default("health_status"))
    p.add_argument("--health-body", default=_default("health_body"))
    p.add_argument("--health-match", choices=["exact", "json", "regex"], default=_default("health_match"))
    p.add_argument("--health-timeout", type=float, default=_default("health_timeout_seconds"), metavar="SECONDS")
    p.add_argument("--runtime-config", metavar="FILE",
                   help="the runtime.config the environment would write (default: an empty one)")
    args = p.parse_args(argv)
    root = Path(args.app_dir)
    if not root.is_dir():
        print(f"{root} is not a directory", file=sys.stderr)
        return 2
    findings = check_app(app_files(root))
    if args.boot and not any(f.level == ERROR for f in findings):
        from hotdeploy.agent import Health
        health = Health(args.app_port, args.health_path or None, args.health_status, args.health_body,
                        args.health_match)
        config = Path(args.runtime_config).read_text() if args.runtime_config else "[]."
        findings += boot(root, health, config, args.health_timeout, _default("health_soak_seconds"))
    print(f"{root.resolve()}:")
    print(render(findings))
    return 1 if any(f.level == ERROR for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
