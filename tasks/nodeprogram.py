"""The node program, compiled: `tasks/erlang/hotdeploy_node.erl` turned into
BEAM bytes by the worker's `erlc`, read once per process and kept on disk
(`~/.cache/hotdeploy/`, keyed by the source's sha256 and the compiler's OTP
release): every deployment run is a new process, and erlc costs about half
a second of CPU each time. The BEAM is compressed and deterministic, so the
same source and compiler give the same bytes."""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import zlib
from pathlib import Path

from hotdeploy.agent import MODULE, SOURCE


class NoCompiler(RuntimeError):
    pass


_lock = threading.Lock()
_compiled: dict[Path, bytes] = {}   # source -> its BEAM, in this process (called for every host: no I/O then)


def node_program(source: Path = SOURCE, cache: Path | None = None) -> bytes:
    """The BEAM of SOURCE: from this process, else from CACHE (default
    ~/.cache/hotdeploy), else compiled and kept there."""
    with _lock:
        if source not in _compiled:
            erlc = _erlc()
            key = f"{MODULE}-{hashlib.sha256(source.read_bytes()).hexdigest()[:16]}-otp{_otp_release(erlc)}"
            _compiled[source] = _cached(cache or Path.home() / ".cache" / "hotdeploy", key, source, erlc)
        return _compiled[source]


def _cached(cache: Path, key: str, source: Path, erlc: str) -> bytes:
    path = cache / f"{key}.beam"
    try:
        beam = path.read_bytes()
        if _whole(beam):
            return beam
    except OSError:
        pass
    beam = _compile(source, erlc)
    try:  # a cache that cannot be written costs the next run a compile, nothing else
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)
        part = cache / f".{key}.{os.getpid()}.part"
        part.write_bytes(beam)
        part.replace(path)
    except OSError:
        pass
    return beam


def _whole(beam: bytes) -> bool:
    """A whole BEAM file (compressed or not): anything else, a damaged cache
    entry, is compiled again rather than sent to every node."""
    try:
        return (gzip.decompress(beam) if beam[:2] == b"\x1f\x8b" else beam)[:4] == b"FOR1"
    except (OSError, EOFError, zlib.error):
        return False


def _erlc() -> str:
    erlc = shutil.which("erlc")
    if erlc is None:
        raise NoCompiler("erlc is not on this worker's PATH: the node program is compiled here before it is sent "
                         "to the hosts. Install Erlang/OTP (Debian: erlang-base) of the hosts' OTP release or older")
    return erlc


def _otp_release(erlc: str) -> str:
    """The compiler's OTP release, read from its installation (running erl
    would cost what the cache saves); its path when the layout is unknown."""
    root = Path(os.path.realpath(erlc)).parent.parent            # <root>/bin/erlc
    found = sorted(root.glob("releases/*/OTP_VERSION"))
    if found:
        return found[-1].read_text().strip()
    return hashlib.sha256(os.path.realpath(erlc).encode()).hexdigest()[:12]


def _compile(source: Path, erlc: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="hotdeploy-erlc-") as out:
        done = subprocess.run([erlc, "+compressed", "+deterministic", "-o", out, str(source)],
                              capture_output=True, text=True, timeout=120)
        beam = Path(out) / f"{MODULE}.beam"
        if done.returncode != 0 or not beam.is_file():
            raise NoCompiler(f"erlc could not compile {source.name}: {(done.stdout + done.stderr).strip()[-600:]}")
        return beam.read_bytes()
