"""A flow run that starts warm: the engine forked from a process that has
imported Prefect and the libraries our flows use, instead of a new
`python -m prefect.engine` that imports them again (about 2.5 s of CPU per
run, most of a short run's start).

Two roles, one file (run by path, so it needs no install):

  python deployments/warm.py --serve SOCKET   the engine server: imports,
      then forks one child per flow run asked for on the unix socket SOCKET;
  python deployments/warm.py SOCKET           the client, the command the
      worker runs for a flow run: stdlib only, so it starts in milliseconds.
      It hands the server its environment, directory and stdin/stdout/stderr
      (the child writes straight into the worker's pipes), forwards the
      signals the worker sends, and exits with the child's exit code.

Only libraries are shared: the server forgets our own modules after
importing them, so each run imports our code from where its deployment
says (the checkout as it is now, or code pulled from git). A library
installed or upgraded since the server started makes the client start
cold (`python -m prefect.engine`, what a plain process worker runs) and the
server restart itself; so does a server that does not answer.

A child whose client is gone (the worker killed it for good) kills itself,
as the engine process would have died with it."""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

# The client imports nothing else: it runs once per flow run.

COLD = [sys.executable, "-m", "prefect.engine"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORWARDED = (signal.SIGTERM, signal.SIGINT)
HEADER = struct.Struct("!I")
REQUEST_S = 10.0     # a client sends its request at once


def _send(sock: socket.socket, message: dict) -> None:
    body = json.dumps(message).encode()
    sock.sendall(HEADER.pack(len(body)) + body)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _recv(sock: socket.socket) -> dict:
    (size,) = HEADER.unpack(_recv_exactly(sock, HEADER.size))
    return json.loads(_recv_exactly(sock, size))


# --- the client: one per flow run ---------------------------------------

def run_client(socket_path: str) -> int:
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(socket_path)
        socket.send_fds(sock, [b"F"], [0, 1, 2])
        _send(sock, {"env": dict(os.environ), "cwd": os.getcwd()})
        started = _recv(sock)
    except (OSError, EOFError, ValueError):
        started = {"cold": "no engine server answers"}
    if "cold" in started:
        print(f"hotdeploy: cold start ({started['cold']})", file=sys.stderr, flush=True)
        os.execv(COLD[0], COLD)

    def forward(signum, _frame):
        try:
            _send(sock, {"signal": signum})
        except OSError:
            pass
    for signum in FORWARDED:
        signal.signal(signum, forward)
    while True:
        try:
            message = _recv(sock)
        except InterruptedError:
            continue
        except (OSError, EOFError):
            return 1        # the child died without a word (killed): the worker marks the run crashed
        if "exit" in message:
            return int(message["exit"])


# --- the server: imports once, forks per run ----------------------------

def library_dirs(root: str) -> dict[str, float]:
    """The modification time of each directory on sys.path but our
    checkout ROOT (our code is not shared): installing or upgrading a
    package changes its site-packages entries, and with them the
    directory's time."""
    seen = {}
    for entry in sys.path:
        if entry and os.path.isdir(entry) and os.path.realpath(entry) != os.path.realpath(root):
            seen[entry] = os.stat(entry).st_mtime
    return seen


def stale(dirs: dict[str, float]) -> list[str]:
    """The directories of DIRS that changed since it was taken."""
    changed = []
    for path, mtime in dirs.items():
        try:
            now = os.stat(path).st_mtime
        except OSError:
            now = -1.0
        if now != mtime:
            changed.append(path)
    return changed


def is_ours(path: str | None, root: str) -> bool:
    """A module file of our checkout ROOT, not of a virtualenv inside it."""
    return bool(path) and path.startswith(root + os.sep) and not path.startswith(sys.prefix + os.sep)


def preload(root: str) -> list[str]:
    """Import what a flow run imports before its first line (the engine, and
    every library our flows use) and load the S3 and EC2 models every deploy
    reads (tasks/aws.py), then forget our own modules: each run
    imports those from its own code (a checkout updated since, or the code
    a deployment pulls from git), so only libraries are shared. Returns the
    names forgotten."""
    import importlib
    import pkgutil

    import prefect.engine  # noqa: F401
    import prefect.flow_engine  # noqa: F401
    import prefect._internal.metrics  # noqa: F401
    import prefect.deployments.steps.core  # noqa: F401 (pull steps)
    from prefect.utilities import dispatch
    for info in pkgutil.iter_modules([os.path.join(root, "flows")]):
        importlib.import_module(f"flows.{info.name}")
    importlib.import_module("tasks.aws").load_models()   # botocore keeps them: every run's clients in ~15 ms
    ours = sorted(name for name, module in sys.modules.items() if is_ours(getattr(module, "__file__", None), root))
    for name in ours:
        del sys.modules[name]
    for registry in dispatch._TYPE_REGISTRIES.values():     # our block types register again on import
        for key, cls in list(registry.items()):
            if getattr(cls, "__module__", None) in ours:
                del registry[key]
    return ours


def _die_with_parent() -> None:
    """The server ends with the worker that started it, even a killed one."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve(socket_path: str, root: str) -> None:
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:
        return
    sys.path[0] = root          # as `python -m` from the checkout (run as a script, [0] is deployments/)
    forgotten = preload(root)
    dirs = library_dirs(root)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)     # the children are reaped by the kernel
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    os.chmod(socket_path, 0o600)
    listener.listen(64)
    print(f"hotdeploy engine server: ready on {socket_path} ({len(sys.modules)} modules imported, "
          f"{len(forgotten)} of ours left to each run)", file=sys.stderr, flush=True)
    while True:
        conn, _ = listener.accept()
        conn.settimeout(REQUEST_S)     # one server for every run: a client that never asks cannot hold it
        fds: list[int] = []
        try:
            _, fds, _, _ = socket.recv_fds(conn, 1, 3)
            request = _recv(conn)
        except (OSError, EOFError, ValueError):
            conn.close()
            _close(fds)
            continue
        conn.settimeout(None)
        changed = stale(dirs)
        if changed:
            _send(conn, {"cold": f"{changed[0]} changed since the server started: restarting it"})
            conn.close()
            _close(fds)
            listener.close()
            os.unlink(socket_path)
            os.execv(sys.executable, [sys.executable, *sys.argv])
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            listener.close()
            os._exit(_child(conn, fds, request))
        conn.close()
        _close(fds)


def _child(conn: socket.socket, fds: list[int], request: dict) -> int:
    """In the forked child: become the flow run's engine process."""
    import atexit
    import runpy
    import threading

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)     # subprocess.run must be able to wait
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = request["cwd"]           # as `python -m` sets it
    sys.argv = ["prefect.engine"]
    import prefect.context
    import prefect.logging.configuration
    prefect.context.refresh_global_settings_context()   # the run's settings, from its environment
    prefect.logging.configuration.setup_logging(incremental=False)
    _send(conn, {"pid": os.getpid()})

    def listen() -> None:
        """Signals the client forwards; its end (killed) ends us too."""
        while True:
            try:
                message = _recv(conn)
            except (OSError, EOFError, ValueError):
                os.kill(os.getpid(), signal.SIGKILL)
                return
            if "signal" in message:
                os.kill(os.getpid(), int(message["signal"]))
    threading.Thread(target=listen, name="hotdeploy-client", daemon=True).start()

    code = 0
    try:
        sys.modules.pop("prefect.engine", None)     # imported by the server: run as __main__ afresh, as -m does
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    try:
        # What the interpreter's exit runs, in its order: join the threads that
        # are not daemons (a thread pool's hosts finish their step), then the
        # exit functions (Prefect drains its log and event senders).
        threading._shutdown()
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            _send(conn, {"exit": code})
        except OSError:
            pass
    return code


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--serve":
        serve(argv[1], ROOT)
        return 0
    if len(argv) == 1:
        return run_client(argv[0])
    print("usage: python deployments/warm.py [--serve] SOCKET", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
