"""A reader for the Erlang terms that release files hold (relup, .rel).

Just enough of the term syntax for files written by systools/relx with
io_lib:format("~p"): atoms, strings, integers, floats, tuples, lists and
binaries of a string. Atoms become `Atom`, strings `str`, tuples `tuple`.
"""
from __future__ import annotations

import re
from typing import Any


class Atom(str):
    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>%[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<qatom>'(?:[^'\\]|\\.)*')
      | (?P<number>-?\d+(?:\.\d+(?:[eE][-+]?\d+)?)?(?:\#[0-9a-zA-Z]+)?)
      | (?P<atom>[a-z][a-zA-Z0-9_@]*)
      | (?P<punct><<|>>|[{}\[\],|.])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "s": " ", "e": "\x1b", "0": "\0"}


class ErlangSyntaxError(ValueError):
    pass


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _tokens(text: str):
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos:].strip() == "":
                return
            raise ErlangSyntaxError(f"unexpected text at {pos}: {text[pos:pos + 30]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "comment":
            continue
        yield kind, m.group(kind)


def consult(text: str) -> list[Any]:
    """All terms of a file, like file:consult/1."""
    toks = list(_tokens(text))
    terms, i = [], 0
    try:
        while i < len(toks):
            term, i = _parse(toks, i)
            if i >= len(toks) or toks[i] != ("punct", "."):
                raise ErlangSyntaxError("term not ended by '.'")
            terms.append(term)
            i += 1
    except IndexError:
        raise ErlangSyntaxError("unexpected end of text") from None
    return terms


def _parse(toks, i):
    kind, val = toks[i]
    if kind == "string":
        # Adjacent string literals concatenate, as in Erlang.
        s = _unescape(val[1:-1])
        i += 1
        while i < len(toks) and toks[i][0] == "string":
            s += _unescape(toks[i][1][1:-1])
            i += 1
        return s, i
    if kind == "qatom":
        return Atom(_unescape(val[1:-1])), i + 1
    if kind == "atom":
        return Atom(val), i + 1
    if kind == "number":
        if "#" in val:
            base, digits = val.split("#")
            return int(digits, int(base)), i + 1
        return (float(val) if "." in val else int(val)), i + 1
    if val in ("{", "["):
        close = "}" if val == "{" else "]"
        items, i = [], i + 1
        while toks[i] != ("punct", close):
            item, i = _parse(toks, i)
            items.append(item)
            if toks[i] == ("punct", ","):
                i += 1
            elif toks[i] == ("punct", "|"):
                tail, i = _parse(toks, i + 1)
                items.extend(tail)
        return (tuple(items) if close == "}" else items), i + 1
    if val == "<<":
        items, i = [], i + 1
        while toks[i] != ("punct", ">>"):
            item, i = _parse(toks, i)
            items.append(item)
            if toks[i] == ("punct", ","):
                i += 1
        return "".join(x if isinstance(x, str) else chr(x) for x in items).encode(), i + 1
    raise ErlangSyntaxError(f"unexpected {val!r}")
