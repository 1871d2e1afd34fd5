"""vm.args read for what the node's distribution exposes (pure)."""
import pytest

from hotdeploy.distribution import (RELX_DEFAULT, DistributionRefused, problems, read_vm_args, refuse_unsafe,
                                    vm_args_path)

SAFE = "-name shop@127.0.0.1\n-kernel inet_dist_use_interface {127,0,0,1}\n+K true\n"


def test_the_example_recipe_is_safe():
    dist = read_vm_args(SAFE)
    assert dist.node == "shop@127.0.0.1" and dist.loopback and not dist.cookie_line
    assert problems(dist, "shop") == []
    assert dist.as_manifest() == {"node": "shop@127.0.0.1", "loopback": True}


def test_relx_default_is_refused_with_the_lines_to_add():
    dist = read_vm_args(RELX_DEFAULT.format(rel="shop"))
    assert dist.short_name and dist.cookie_line and not dist.loopback
    with pytest.raises(DistributionRefused) as refused:
        refuse_unsafe(dist, "shop", "relx's default vm.args")
    text = str(refused.value)
    assert text.startswith("relx's default vm.args: it sets a cookie (-setcookie)")
    assert "not bound to loopback" in text
    assert "-name shop@127.0.0.1 / -kernel inet_dist_use_interface {127,0,0,1}" in text


def test_a_cluster_may_listen_beyond_loopback_but_never_ship_a_cookie():
    open_dist = read_vm_args("-name shop@10.0.0.5\n")
    assert problems(open_dist, "shop", cluster=True) == []
    assert problems(open_dist, "shop") == ["its distribution is not bound to loopback: epmd and the distribution "
                                           "port would listen on every interface of the host"]
    assert len(problems(read_vm_args("-name a@b\n-setcookie x\n"), "shop", cluster=True)) == 1
    assert "names no node" in problems(read_vm_args("+K true\n"), "shop", cluster=True)[0]


def test_loopback_needs_the_interface_and_a_loopback_name():
    assert not read_vm_args("-sname shop\n-kernel inet_dist_use_interface {127,0,0,1}\n").loopback
    assert not read_vm_args("-name shop@127.0.0.1\n").loopback
    assert read_vm_args("-name shop@localhost\n-kernel inet_dist_use_interface '{127, 0, 0, 1}'\n").loopback


def test_which_vm_args_relx_uses():
    assert vm_args_path('{relx, [{vm_args, "config/prod.args"}]}.') == "config/prod.args"
    assert vm_args_path('{relx, [{vm_args_src, "c/vm.args.src"}, {vm_args, "c/vm.args"}]}.') == "c/vm.args.src"
    assert vm_args_path("{relx, []}.") is None
