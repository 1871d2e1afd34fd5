"""The node program, compiled: `tasks/erlang/hotdeploy_node.erl` turned into
BEAM bytes by the worker's `erlc`, once per process (a deploy calls it on
every host; the source cannot change under a running worker). The BEAM is
compressed and deterministic, so the same source gives the same bytes."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from hotdeploy.agent import MODULE, SOURCE


class NoCompiler(RuntimeError):
    pass


_lock = threading.Lock()
_compiled: dict[str, bytes] = {}


def node_program(source: Path = SOURCE) -> bytes:
    """The BEAM of SOURCE (compiled on the first call for that text)."""
    text = source.read_bytes()
    key = hashlib.sha256(text).hexdigest()
    with _lock:
        if key not in _compiled:
            _compiled[key] = _compile(source)
        return _compiled[key]


def _compile(source: Path) -> bytes:
    erlc = shutil.which("erlc")
    if erlc is None:
        raise NoCompiler("erlc is not on this worker's PATH: the node program is compiled here before it is sent "
                         "to the hosts. Install Erlang/OTP (Debian: erlang-base) of the hosts' OTP release or older")
    with tempfile.TemporaryDirectory(prefix="hotdeploy-erlc-") as out:
        done = subprocess.run([erlc, "+compressed", "+deterministic", "-o", out, str(source)],
                              capture_output=True, text=True, timeout=120)
        beam = Path(out) / f"{MODULE}.beam"
        if done.returncode != 0 or not beam.is_file():
            raise NoCompiler(f"erlc could not compile {source.name}: {(done.stdout + done.stderr).strip()[-600:]}")
        return beam.read_bytes()
