"""The SSH client's costs per host (tasks/remote.py). The environment's
known_hosts and the deployer's key are parsed once per process, not on
every host's connect: a host's connect then costs the same at any fleet
size and with any key type. Connections offer AES-GCM first."""
import base64

from tasks.remote import _host_keys

# An ed25519 public key blob (type string, then 32 bytes): only parsed, never used to connect.
BLOB = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))).decode()


def _known_hosts(n: int) -> str:
    return "\n".join(f"198.18.{i // 250}.{i % 250 + 1} ssh-ed25519 {BLOB}" for i in range(n)) + "\n# a comment\n"


def test_known_hosts_are_parsed_once_per_text_and_found_by_address():
    text = _known_hosts(300)
    keys = _host_keys(text)
    assert _host_keys(text) is keys
    assert set(keys.lookup("198.18.1.50") or {}) == {"ssh-ed25519"}
    assert keys.lookup("198.18.9.9") is None
    assert _host_keys(_known_hosts(2)) is not keys


def test_the_private_key_is_loaded_once_and_a_bad_one_says_nothing_of_itself():
    import io

    import paramiko
    import pytest

    from tasks.remote import RemoteError, private_key
    out = io.StringIO()
    paramiko.RSAKey.generate(2048).write_private_key(out)
    text = out.getvalue()
    key = private_key(text)
    assert isinstance(key, paramiko.RSAKey) and private_key(text) is key
    with pytest.raises(RemoteError) as e:
        private_key("-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LXBhcnQ=\n-----END OPENSSH PRIVATE KEY-----\n")
    assert "c2VjcmV0" not in str(e.value)


def test_connections_offer_aes_gcm_first_and_keep_every_other_cipher():
    """GCM's tag is checked in OpenSSL; CTR's HMAC is compared in Python by
    paramiko, packet by packet. A server without GCM still gets CTR."""
    import socket

    import paramiko

    from tasks.remote import _transport
    mine, theirs = socket.socketpair()
    try:
        offered = _transport(mine).get_security_options().ciphers
        default = paramiko.Transport(theirs).get_security_options().ciphers
    finally:
        mine.close(), theirs.close()
    assert offered[:2] == ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
    assert sorted(offered) == sorted(default)
