"""Erlang distribution of a release, read from its vm.args (pure): hotdeploy
drives each node through `erl_call` under the name vm.args gives, and a node
whose distribution listens beyond loopback with a known cookie lets anyone on
the hosts' network run code in it.

Rules (a release breaking one is refused, with the lines to add):
- a node name (`-name <rel>@127.0.0.1`): erl_call needs it;
- no `-setcookie`: a cookie in vm.args is in every tarball and usually in
  git (relx's default is the release's own name); the cookie is made per
  host at provisioning (`~/.erlang.cookie`), or, for a cluster, given by the
  environment;
- distribution bound to loopback (`-kernel inet_dist_use_interface
  {127,0,0,1}`, a name at 127.0.0.1), unless the environment says its nodes
  form a cluster.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import Refusal
from .project import without_comments

LOOPBACK_LINES = ("-name {rel}@127.0.0.1", "-kernel inet_dist_use_interface {{127,0,0,1}}")


class DistributionRefused(Refusal, ValueError):
    pass


@dataclass(frozen=True)
class Distribution:
    node: str | None           # the -name/-sname value
    short_name: bool           # -sname (binds to the host name's address)
    loopback: bool             # the distribution listens on 127.0.0.1 only
    cookie_line: bool          # vm.args sets a cookie

    def as_manifest(self) -> dict:
        return {"node": self.node, "loopback": self.loopback}


_INTERFACE = re.compile(r"^-kernel\s+inet_dist_use_interface\s+'?\{\s*127\s*,\s*0\s*,\s*0\s*,\s*1\s*\}'?\s*$",
                        re.MULTILINE)


def read_vm_args(text: str) -> Distribution:
    name = re.search(r"^-(s?name)[ \t]+(\S+)", text, re.MULTILINE)
    node = name.group(2) if name else None
    host = node.partition("@")[2] if node else ""
    loopback = bool(_INTERFACE.search(text)) and name is not None and name.group(1) == "name" \
        and host in ("127.0.0.1", "localhost")
    return Distribution(node, bool(name and name.group(1) == "sname"), loopback,
                        bool(re.search(r"^-setcookie\b", text, re.MULTILINE)))


def problems(dist: Distribution, rel: str, cluster: bool = False) -> list[str]:
    """What is wrong with DIST for release REL (empty: nothing)."""
    found = []
    if dist.node is None:
        found.append("it names no node: hotdeploy reaches the node with erl_call under the name vm.args gives")
    if dist.cookie_line:
        found.append("it sets a cookie (-setcookie): a cookie in vm.args ships in every tarball (relx's default "
                     "is the release's name, which anyone can guess); hotdeploy makes one per host at "
                     "provisioning (~/.erlang.cookie)")
    if not cluster and not dist.loopback:
        found.append("its distribution is not bound to loopback: epmd and the distribution port would listen on "
                     "every interface of the host")
    return found


def refuse_unsafe(dist: Distribution, rel: str, where: str, cluster: bool = False, hint: str = "") -> None:
    """Raise DistributionRefused naming WHERE, each problem (all of them,
    loopback included, once one is refused), and the lines that make vm.args
    right."""
    if problems(dist, rel, cluster):
        found = problems(dist, rel)
        lines = [line.format(rel=rel) for line in LOOPBACK_LINES]
        raise DistributionRefused(
            f"{where}: {'; '.join(found)}. Nothing was done. Use these lines in the release's vm.args (and no "
            f"-setcookie): {' / '.join(lines)}" + (f" ({hint})" if hint else "") +
            ("" if cluster else "; an environment whose nodes form a cluster says so (distribution = cluster)"))


def vm_args_path(rebar_config: str) -> str | None:
    """The vm.args relx uses, as rebar.config names it (vm_args_src first,
    as relx does); None when it names none (relx then takes config/vm.args.src
    or config/vm.args, and writes its own default when neither exists)."""
    code = without_comments(rebar_config, "%")
    for key in ("vm_args_src", "vm_args"):
        m = re.search(r"\{\s*" + key + r"\s*,\s*\"([^\"]+)\"\s*\}", code)
        if m:
            return m.group(1)
    return None


# What relx writes when a project gives no vm.args (relx 4.x).
RELX_DEFAULT = "-sname {rel}\n-setcookie {rel}\n+C multi_time_warp\n"
