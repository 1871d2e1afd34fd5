"""The container engine (docker SDK, configured by a prefect-docker DockerHost).

prefect-docker's own container tasks are async and give no exit code, so each
task here makes its one container run through the docker SDK client that the
DockerHost block builds, waits for the exit code and keeps the log tail.
"""
from __future__ import annotations

import hashlib
import io
import re
import tarfile
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

# prefect_docker first: it imports docker-py whole. Prefect puts a lazy
# `docker` module in sys.modules (prefect_aws imports it), and `import
# docker.errors` through that lazy module loads a second docker.errors, whose
# ImageNotFound our `except docker.errors.ImageNotFound` would not catch.
from prefect_docker import DockerHost  # isort: skip

import docker.errors  # isort: skip
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from hotdeploy import project as commands
from hotdeploy.artifact import read_rel
from hotdeploy.errors import KnownFailure
from hotdeploy.project import Project, vm_args_node_name
from hotdeploy.report import failing_tests

from .retry import retrying

ERLANG_HELPERS = Path(__file__).parent / "erlang"
TAIL_LINES = 30


class ContainerFailed(KnownFailure, RuntimeError):
    """The command ran and exited non-zero: a verdict, not a flake; never retried.
    CAUSE is the one line a run's final state shows (the failing tests)."""

    def __init__(self, message: str, cause: str | None = None):
        super().__init__(message)
        self.cause = cause or message.splitlines()[0]


# Container runs take minutes: an engine flake is retried twice, whatever
# the time; a command's own failure (ContainerFailed) never is.
ENGINE_RETRIES = retrying(delays=(2, 10), attempt_s=0, budget_s=float("inf"))
# A test or build that runs longer is stopped and fails the release.
CONTAINER_TIMEOUT_S = 1800


@dataclass(frozen=True)
class BuilderImage:
    tag: str
    id: str
    cache_key: str
    built: bool  # False when an image with this cache key was already there


def _base_image(dockerfile_text: str) -> str:
    m = re.search(r"^\s*FROM\s+(\S+)", dockerfile_text, re.MULTILINE | re.IGNORECASE)
    if not m:
        raise ValueError("the builder Dockerfile has no FROM line")
    return m.group(1)


@task(**ENGINE_RETRIES)
def ensure_builder_image(dockerfile: Path, docker_host: DockerHost) -> BuilderImage:
    """Build the app's builder image unless one with the same inputs exists.

    Cache key = sha256 of the Dockerfile's instructions (comments and blank
    lines do not count: two apps whose builders say the same share one image)
    and of the id of its FROM image. The Dockerfile is built with a context
    holding nothing else, so nothing else can change the image.
    """
    log = get_run_logger()
    client = docker_host.get_client()
    text = dockerfile.read_text()
    base = _base_image(text)
    try:
        base_id = client.images.get(base).id
    except docker.errors.ImageNotFound:
        raise ContainerFailed(
            f"base image {base} (FROM in {dockerfile}) is not in the engine "
            f"({docker_host.base_url or 'the local one'}); build it offline with scripts/base-image.sh, "
            "or copy it there (docker save | docker -H <engine> load)"
        ) from None
    instructions = "\n".join(line.rstrip() for line in text.splitlines()
                              if line.strip() and not line.lstrip().startswith("#"))
    key = hashlib.sha256(instructions.encode() + b"\0" + base_id.encode()).hexdigest()
    tag = f"hotdeploy-builder:{key[:16]}"
    try:
        image = client.images.get(tag)
        log.info("builder image cache hit: %s (key %s)", tag, key[:16])
        return BuilderImage(tag, image.id, key, built=False)
    except docker.errors.ImageNotFound:
        pass
    log.info("builder image cache miss: building %s from %s (key %s)", tag, dockerfile, key[:16])
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(text.encode())
        tar.addfile(info, io.BytesIO(text.encode()))
    context.seek(0)
    try:
        image, _ = client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True,
                                       network_mode="host", labels={"hotdeploy.cache-key": key})
    except docker.errors.BuildError as e:
        tail = "".join(str(c.get("stream", c.get("error", ""))) for c in list(e.build_log)[-TAIL_LINES:])
        raise ContainerFailed(f"builder image build failed: {e.msg}\n{tail}") from None
    return BuilderImage(tag, image.id, key, built=True)


def _as_root(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = "root"
    return member


def _ours(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """Extraction filter: no paths out of DEST, and the files are the worker's
    (the container ran as root)."""
    return tarfile.tar_filter(member, dest).replace(uid=None, gid=None, uname=None, gname=None, deep=False)


def _send_workspace(container, workspace: Path) -> int:
    """The build context goes over the engine's API (put_archive), never a
    bind mount, so an engine on another machine (a DockerHost with a tcp://
    or ssh:// base_url) builds what this worker has. Returns bytes sent."""
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(workspace, arcname="build", filter=_as_root)
            tar.add(ERLANG_HELPERS, arcname=commands.HELPERS.strip("/"), filter=_as_root)
        size = archive.tell()
        archive.seek(0)
        container.put_archive("/", archive)
    return size


def _fetch_output(container, workspace: Path, path: str, what: str) -> int:
    """Copy /build/PATH out of the stopped container onto WORKSPACE/PATH
    (get_archive; PATH "." is the whole workspace). Returns bytes received."""
    target = workspace / path if path != "." else workspace
    try:
        chunks, _ = container.get_archive("/build" if path == "." else f"/build/{path}")
    except docker.errors.NotFound:
        raise ContainerFailed(f"{what} finished but {path} is missing") from None
    with tempfile.TemporaryFile() as archive:
        for chunk in chunks:
            archive.write(chunk)
        size = archive.tell()
        archive.seek(0)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=archive) as tar:
            members = tar.getmembers()
            for m in members:   # the archive's top is the path's own name ("build" for the workspace)
                m.name = "/".join([target.name, *m.name.split("/")[1:]])
            tar.extractall(target.parent, members=members, filter=_ours)
    return size


def _send_files(container, files: dict[str, bytes]) -> int:
    """FILES (absolute path in the container -> bytes), over the engine's API."""
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for path, data in files.items():
                member = tarfile.TarInfo(path.lstrip("/"))
                member.size, member.mode = len(data), 0o644
                tar.addfile(member, io.BytesIO(data))
        size = archive.tell()
        archive.seek(0)
        container.put_archive("/", archive)
    return size


def run_container(docker_host: DockerHost, image: BuilderImage, workspace: Path | None, command: str,
                  what: str, outputs: tuple[str, ...] = (), timeout_s: float = CONTAINER_TIMEOUT_S,
                  files: dict[str, bytes] | None = None) -> str:
    """One container run: a copy of WORKSPACE at /build (when given), FILES
    (path -> bytes) and the Erlang helpers at /hotdeploy, no network; then
    the OUTPUTS (paths under the workspace) are copied back. Nothing is
    shared with the engine's filesystem. Returns the log; raises
    ContainerFailed with the log tail on a non-zero exit, or when the run
    outlasts TIMEOUT_S (the container is killed)."""
    log = get_run_logger()
    client = docker_host.get_client()
    container = client.containers.create(image.tag, ["sh", "-ec", command], network_mode="none",
                                         environment={"HOME": "/tmp"}, working_dir="/build" if workspace else "/")
    try:
        t0 = time.monotonic()
        sent = (_send_workspace(container, workspace) if workspace else 0) + \
            (_send_files(container, files) if files else 0)
        log.info("%s: %s sent to the engine (%.1f MB, %.2f s)", what, "workspace" if workspace else "files",
                 sent / 1e6, time.monotonic() - t0)
        container.start()
        killed = threading.Event()
        watchdog = threading.Timer(timeout_s, lambda: (killed.set(), container.kill()))
        watchdog.daemon = True
        watchdog.start()
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        lines = []
        for raw in container.logs(stream=True, follow=True):
            for line in raw.decode(errors="replace").splitlines():
                line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # rebar3 colours
                lines.append(line)
                tail.append(line)
                log.info("%s | %s", what, line)
        code = container.wait()["StatusCode"]
        watchdog.cancel()
        if killed.is_set():
            raise ContainerFailed(f"{what} did not finish within {timeout_s:g} s: the container was stopped; "
                                  "last lines:\n" + "\n".join(tail), f"{what} did not finish within {timeout_s:g} s")
        if code == 0 and outputs:
            t0 = time.monotonic()
            received = sum(_fetch_output(container, workspace, path, what) for path in outputs)
            log.info("%s: %s copied back (%.1f MB, %.2f s)", what, ", ".join(outputs), received / 1e6,
                     time.monotonic() - t0)
    finally:
        container.remove(force=True)
    if code != 0:
        failing = failing_tests(lines)
        cause = (f"{what} failed: {', '.join(failing[:5])}" + (f" and {len(failing) - 5} more" if len(failing) > 5
                                                                else "") if failing else None)
        raise ContainerFailed(f"{what} failed (exit {code}); last lines:\n" + "\n".join(tail), cause)
    return "\n".join(lines)


@task(**ENGINE_RETRIES)
def test_in_container(docker_host: DockerHost, image: BuilderImage, workspace: Path, test_command: str) -> str:
    """The app's tests in the builder image; a failing test fails the release."""
    return run_container(docker_host, image, workspace, test_command, "tests")


@task(**ENGINE_RETRIES)
def inspect_modules(docker_host: DockerHost, image: BuilderImage, workspace: Path,
                    project: Project, version: str, previous: list[str]) -> str:
    """Write VERSION into the app, compile, and report the modules of the new
    build and of each previous release (tasks/erlang/modinfo.escript)."""
    out = ".hotdeploy-modinfo.tsv"
    # All of it back: the build step goes on from the version written and the
    # code compiled here (their mtimes kept, so nothing is compiled twice).
    run_container(docker_host, image, workspace, commands.compile_and_inspect(project, version, previous, out),
                  "compile", outputs=(".",))
    return (workspace / out).read_text()


@task(**ENGINE_RETRIES)
def build_release(docker_host: DockerHost, image: BuilderImage, workspace: Path,
                  project: Project, version: str, previous: list[str]) -> Path:
    """The release, a relup up from and down to every PREVIOUS release
    (tasks/erlang/relup.escript: `rebar3 relup` takes one), then the tarball,
    which keeps releases/VERSION/relup."""
    run_container(docker_host, image, workspace, commands.build_release(project, version, previous), "build",
                  outputs=commands.release_outputs(project, version))
    rel_dir = workspace / project.rel_dir
    if project.kind == commands.MIX:
        return pack_release(rel_dir, project.release, version)
    tarball = rel_dir / f"{project.release}-{version}.tar.gz"
    if not tarball.is_file():
        raise ContainerFailed(f"build finished but {tarball} is missing")
    return tarball


def pack_release(rel_dir: Path, release: str, version: str) -> Path:
    """A mix release as release_handler unpacks it (relx's tarball layout):
    the start script, the ERTS and the lib/ dirs its .rel names, releases/VSN,
    releases/<rel>-VSN.rel and start_erl.data; member names without "./"
    (mix's own tarball has them and unpack_release refuses it). Not
    releases/COOKIE: the cookie is the host's."""
    rel_file = rel_dir / "releases" / version / f"{release}.rel"
    if not rel_file.is_file():
        raise ContainerFailed(f"build finished but {rel_file} is missing")
    _, erts, apps = read_rel(release, rel_file.read_text())
    vm_args = rel_dir / "releases" / version / "vm.args"
    if not vm_args_node_name(vm_args.read_text() if vm_args.is_file() else ""):
        raise ContainerFailed(
            "the release's vm.args names no node: hotdeploy reaches the node with erl_call under the name in "
            "vm.args. Add rel/vm.args.eex with `-name my_app@127.0.0.1` and rel/env.sh.eex exporting "
            "RELEASE_DISTRIBUTION=none (docs/your-app.md, Elixir apps)")
    if not (rel_dir / f"erts-{erts}" / "bin" / "erl_call").is_file():
        # Debian's ERTS has it and mix copies it; an OTP built without erl_interface has none
        raise ContainerFailed(f"the release's erts-{erts}/bin has no erl_call: hotdeploy drives the node with it. "
                              "Build with an Erlang/OTP that ships erl_call (Debian's erlang-base does)")
    tops = ["bin", f"erts-{erts}", *(f"lib/{a}-{v}" for a, v in sorted(apps.items())),
            f"releases/{version}", f"releases/{release}-{version}.rel", "releases/start_erl.data"]
    missing = [t for t in tops if not (rel_dir / t).exists()]
    if missing:
        raise ContainerFailed(f"the assembled release lacks {', '.join(missing)}")
    tarball = rel_dir / f"{release}-{version}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for top in tops:
            tar.add(rel_dir / top, arcname=top)
    return tarball


BOOT_ROOT = "/srv/app"


def boot_in_container(docker_host: DockerHost, image: BuilderImage, tarball: Path, release: str,
                      runtime_config: str, first_boot: str, gate: str, tries: int) -> dict[str, str]:
    """The release's first install and gate, in a container of the builder
    image as on a host (hotdeploy/commands.boot_check): what each step
    printed, by step (first_boot, start, gate)."""
    from hotdeploy import commands as remote
    inputs = remote.BOOT_INPUTS
    files = {f"{inputs}/release.tar.gz": tarball.read_bytes(), f"{inputs}/runtime.config": runtime_config.encode(),
             f"{inputs}/first_boot": first_boot.encode(), f"{inputs}/gate": gate.encode()}
    output = run_container(docker_host, image, None, remote.boot_check(BOOT_ROOT, release, tries), "boot",
                           files=files)
    return remote.boot_sections(output)
