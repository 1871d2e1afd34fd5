"""The call of the node program (pure text work).

`tasks/erlang/hotdeploy_node.erl` is an Erlang module, compiled once per
deploy on the worker (tasks/nodeprogram.py). A call sends, on the stdin of
the release's own `erl_call -e` (a C program shipped in every release's
ERTS: no VM boots on the host), an expression sequence that binds the
parameters to `P`, loads the compiled module into the node
(`code:load_binary`), calls `hotdeploy_node:run(P)` and deletes and purges
the module again. The answer is one JSON object that `erl_call` prints as
`{ok, "<json>"}` (the module keeps it printable ASCII, so the text between
the quotes is the JSON itself).
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "tasks" / "erlang" / "hotdeploy_node.erl"
MODULE = "hotdeploy_node"


class Atom(str):
    """A value written as an Erlang atom (strings are written as Erlang strings)."""


class Bin(str):
    """A value written as an Erlang binary."""


class Tuple(tuple):
    """A value written as an Erlang tuple (lists and plain tuples are lists)."""


_ATOM = re.compile(r"^[a-z][a-zA-Z0-9_@]*$")


def term(value) -> str:
    """VALUE as Erlang term text: dict -> map with atom keys, str -> string
    (a list: what release_handler wants), Atom -> atom, Bin -> binary,
    bool -> true/false, None -> undefined, int/float, list -> list."""
    if isinstance(value, Atom):
        if _ATOM.match(value):
            return str(value)
        if not value or len(value) > 255:
            raise ValueError(f"not an Erlang atom: {value!r}")
        return "'" + _string(value)[1:-1].replace("'", "\\'") + "'"   # quoted: 'Elixir.Shop.Sup
    if isinstance(value, Bin):
        return "<<" + _string(value) + "/utf8>>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "undefined"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dict):
        return "#{" + ", ".join(f"{term(Atom(k))} => {term(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Tuple):
        return "{" + ", ".join(term(v) for v in value) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(term(v) for v in value) + "]"
    raise TypeError(f"no Erlang term for {type(value).__name__}")


def _string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:  # \x{...} keeps the program text printable ASCII
            out.append(f"\\x{{{ord(ch):x}}}")
    out.append('"')
    return "".join(out)


# What the call answers when the module will not load in the node (a BEAM
# compiled by a newer OTP than the node's): io_lib:format's ~0p, ~s.
_LOAD_FAILED = json.dumps({"result": "failed", "step": "load",
                           "detail": "the node program cannot be loaded in this node (~0p; the node runs OTP ~s): "
                                     "compile it on the worker with the hosts' OTP release or an older one"})


def program(params: dict, beam: bytes) -> str:
    """The text sent to `erl_call -e`: the parameters, the compiled module
    (BEAM bytes), its call, and its removal from the node."""
    encoded = base64.b64encode(beam).decode()
    return (f"P = {term(params)},\n"
            f'HotdeployBeam = base64:decode(<<"{encoded}">>),\n'
            f"_ = code:purge({MODULE}),\n"
            f'case code:load_binary({MODULE}, "{MODULE}.erl", HotdeployBeam) of\n'
            f"    {{module, {MODULE}}} ->\n"
            f"        try {MODULE}:run(P) after code:delete({MODULE}), code:soft_purge({MODULE}) end;\n"
            f"    {{error, HotdeployWhy}} ->\n"
            f"        lists:flatten(io_lib:format({_string(_LOAD_FAILED)}, "
            f"[HotdeployWhy, erlang:system_info(otp_release)]))\n"
            "end.\n")


class NodeUnreachable(RuntimeError):
    """erl_call could not reach the node (not running, wrong cookie or name)."""


class ProgramFailed(RuntimeError):
    """The node evaluated the program and it raised: a bug of ours, or a node
    too different from what it expects."""


def parse_answer(output: str) -> dict:
    """The JSON object printed by `erl_call -e` as `{ok, "<json>"}`."""
    text = output.strip()
    match = re.search(r'\{ok, "(\{.*\})"\}\s*$', text, re.S)
    if match:
        return json.loads(match.group(1))
    if text.startswith("{error,"):
        raise ProgramFailed(text[:600])
    raise NodeUnreachable(text.splitlines()[-1][:300] if text else "erl_call printed nothing")


@dataclass(frozen=True)
class Health:
    """What the gate asks of the app's endpoint: GET PATH must answer STATUS
    and a body that MATCH says: `exact` (BODY, {version} replaced; empty:
    any), `json` (BODY names a field, dotted for nested objects, whose value
    is the version), `regex` (BODY must match, {version} replaced by the
    version quoted). No PATH: the node-only gate (the release runs, its tree
    is up, no error event), for an app with no HTTP endpoint."""
    port: int
    path: str | None
    status: int = 200
    body: str = "{version}"
    match: str = "exact"

    def as_param(self) -> dict:
        return {"port": self.port, "path": self.path or Atom("none"), "status": self.status, "body": Bin(self.body),
                "match": Atom(self.match)}

    def describe(self) -> str:
        """The gate in words, for the run's table."""
        if not self.path:
            return "node only (no endpoint): the release runs, its tree is up, no error event"
        what = {"exact": f"body {self.body!r}" if self.body else "any body",
                "json": f"JSON field {self.body} = the version", "regex": f"body matching {self.body!r}"}[self.match]
        return f"GET {self.path} -> {self.status}, {what}"


@dataclass(frozen=True)
class Gate:
    """How long the gate waits for the endpoint, how long it then watches
    for error events (the soak), and how long an install may take."""
    health: Health
    timeout_s: float
    soak_s: float
    install_timeout_s: float

    def as_params(self) -> dict:
        return {"health": self.health.as_param(), "health_timeout_ms": int(self.timeout_s * 1000),
                "soak_ms": int(self.soak_s * 1000), "install_timeout_ms": int(self.install_timeout_s * 1000)}

    def upgrade_bound_s(self) -> float:
        """The longest an upgrade call may take on the node: the install, a
        wait for it if it overran (as long again, 30 s at least), the install
        back, two gates, and room for the unpack and the rest."""
        return (2 * self.install_timeout_s + max(self.install_timeout_s, 30) + 2 * (self.timeout_s + self.soak_s)
                + 30)


def call_params(op: str, root: str, rel: str, **extra) -> dict:
    """The parameters of one call: the op, the release root, the release
    (also the application the gate watches), and the op's own."""
    return {"op": Atom(op), "root": root, "rel": rel, "app": Atom(rel), **extra}
