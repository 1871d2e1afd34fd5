"""The per-host program that runs inside the running node (pure text work).

`tasks/erlang/on_node.erl` is an Erlang expression sequence evaluated by the
node itself through `erl_call -e` (a C program shipped in every release's
ERTS: no VM boots on the host). It reads its parameters from one binding,
`P = #{...},`, that `program` prepends; it answers one JSON object that
`erl_call` prints as `{ok, "<json>"}` (the program keeps it printable
ASCII, so the text between the quotes is the JSON itself).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

PROGRAM = Path(__file__).resolve().parent.parent / "tasks" / "erlang" / "on_node.erl"


class Atom(str):
    """A value written as an Erlang atom (strings are written as Erlang strings)."""


class Bin(str):
    """A value written as an Erlang binary."""


_ATOM = re.compile(r"^[a-z][a-zA-Z0-9_@]*$")


def term(value) -> str:
    """VALUE as Erlang term text: dict -> map with atom keys, str -> string
    (a list: what release_handler wants), Atom -> atom, Bin -> binary,
    bool -> true/false, None -> undefined, int/float, list -> list."""
    if isinstance(value, Atom):
        if not _ATOM.match(value):
            raise ValueError(f"not a plain Erlang atom: {value!r}")
        return str(value)
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


def program(params: dict, source: str | None = None) -> str:
    """The text sent to `erl_call -e`: the parameters, then the program."""
    return f"P = {term(params)},\n" + (source if source is not None else PROGRAM.read_text())


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
    """What the gate asks of the app's endpoint ({version} in body is replaced)."""
    port: int
    path: str
    status: int = 200
    body: str = "{version}"

    def as_param(self) -> dict:
        return {"port": self.port, "path": self.path, "status": self.status, "body": Bin(self.body)}
