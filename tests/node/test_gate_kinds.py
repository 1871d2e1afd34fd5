"""A gate for every kind of app: the endpoint's body matched exactly, by a
JSON field, by a regular expression, or no endpoint at all (node only). The
endpoint here is a small HTTP server of the test's (what the app would
answer); the node under it is real."""
from __future__ import annotations

import http.server
import threading

import pytest

from hotdeploy.agent import Atom, Bin

from .node import free_port


@pytest.fixture
def endpoint():
    """serve(body): an HTTP endpoint answering BODY to every GET; its port."""
    servers = []

    def serve(body: str) -> int:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass
        server = http.server.HTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_port
    yield serve
    for server in servers:
        server.shutdown()


def gate(node, vsn: str, port: int | None, body: str, match: str) -> dict:
    health = {"port": port or node.port, "path": "/health" if port else Atom("none"), "status": 200,
              "body": Bin(body), "match": Atom(match)}
    return node.call("gate", vsn=vsn, **{**node.gate(health_timeout_ms=500, soak_ms=200), "health": health,
                                         "probe_path": "/health" if port else ""})


def test_a_json_field_dotted_or_not_holds_the_version(node, releases, endpoint):
    vsn = releases.v1.vsn
    port = endpoint('{"status": "ok", "build": {"version": "%s", "sha": "abc"}, "n": 3}' % vsn)
    assert gate(node, vsn, port, "build.version", "json")["result"] == "done"
    failed = gate(node, vsn, port, "version", "json")
    assert failed["result"] == "failed", failed
    assert f'a JSON body whose version is "{vsn}"' in failed["detail"].replace('\\"', '"'), failed["detail"]


def test_a_regex_with_the_version_quoted_matches_the_body(node, releases, endpoint):
    vsn = releases.v1.vsn
    port = endpoint(f"example_app {vsn} (built today)\n")
    assert gate(node, vsn, port, r"^example_app {version} \(", "regex")["result"] == "done"
    other = endpoint(f"example_app 1x0x1 (built today)\n")      # dots are not any character
    assert gate(node, vsn, other, r"^example_app {version} ", "regex")["result"] == "failed"


def test_an_app_with_no_endpoint_gets_the_node_only_gate(node, releases):
    answer = gate(node, releases.v1.vsn, None, "", "exact")
    assert answer["result"] == "done" and answer["signals"]["probes"] == 0, answer
    wrong = gate(node, "9.9.9", None, "", "exact")
    assert wrong["result"] == "failed" and "health gate (node only): the node runs 1.0.1, not 9.9.9" in wrong["detail"]
