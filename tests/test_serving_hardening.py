"""Hostile clients against the scoring server and the endpoint gateway, started the way phiops
starts them: keys nowhere but the secrets pipe, no key from a URL in a log, bodies refused
by size before they are read, strict JSON, header timeouts, `/stats` behind the key, and a
gateway whose readiness says whether a deployment that takes traffic is ready."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.backend import EndpointKeys
from core.local.endpointprocs import EndpointProcesses
from core.local.endpointstore import GATEWAY_LOG, ROUTES, EndpointRecord, EndpointStore
from core.serving.logredact import redact_log
from tests.fixtures_deploy import AUTH, KEY, OTHER_KEY, gone

URL_SECRET = "url-secret-" + "u" * 30
BIG = 50 * 1024 * 1024


def raw_request(url: str, head: str, body: bytes = b"", wait_s: float = 60) -> bytes:
    """Send `head` (and `body`) on a fresh connection; everything the server sends back
    until it closes the connection or `wait_s` passes (a deadline that only catches hangs)."""
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=wait_s) as conn:
        conn.sendall(head.encode() + body)
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
                head_end = received.find(b"\r\n\r\n")
                if head_end >= 0 and b"413" in received.split(b"\r\n", 1)[0]:
                    # The whole 413: its body may come in a later packet than its head.
                    length = re.search(rb"content-length: (\d+)", received[:head_end], re.I)
                    if length is None or len(received) >= head_end + 4 + int(length[1]):
                        break
        except TimeoutError:
            pytest.fail(f"no answer within {wait_s} s; got {received[:200]!r}")
    return received


def status_line(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode()


# -- the gateway ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[tuple[EndpointStore, str]]:
    """A local endpoint's gateway started by EndpointProcesses, with no deployment yet."""
    store = EndpointStore(tmp_path_factory.mktemp("endpoints"))
    store.write(EndpointRecord("ep-hardening"))
    processes = EndpointProcesses(store)
    processes.start_gateway("ep-hardening", EndpointKeys(KEY, OTHER_KEY), lambda _: None)
    record = store.read("ep-hardening")
    try:
        yield store, f"http://127.0.0.1:{record.port}"
    finally:
        processes.stop("ep-hardening")
        assert gone(record.gateway.pid)


def set_routes(store: EndpointStore, traffic: dict, deployments: dict) -> None:
    path = store.folder("ep-hardening") / ROUTES
    routes = {"endpoint": "ep-hardening", "traffic": traffic, "deployments": deployments}
    path.write_text(json.dumps(routes))
    os.utime(path, ns=(0, os.stat(path).st_mtime_ns + 1_000_000_000))  # surely a new stamp


def gateway_pid(store: EndpointStore) -> int:
    return store.read("ep-hardening").gateway.pid


def test_the_gateways_keys_are_in_neither_argv_nor_its_environment(gateway) -> None:
    store, _ = gateway
    pid = gateway_pid(store)
    for key in (KEY, OTHER_KEY):
        assert key.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert key.encode() not in Path(f"/proc/{pid}/environ").read_bytes()


def test_a_key_sent_in_the_url_is_not_logged(gateway) -> None:
    store, url = gateway
    set_routes(store, {}, {})
    answer = httpx.post(f"{url}/score?key={URL_SECRET}", json={"input_data": ["hi"]}, headers=AUTH)
    assert answer.status_code == 503  # no deployment takes traffic: still logged
    log = store.folder("ep-hardening") / GATEWAY_LOG
    text = log.read_text()
    assert "POST /score?" in text and URL_SECRET not in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    # A line from a log written before the filter is masked when phiops prints it.
    old = f'INFO: 127.0.0.1:5 - "POST /score?key={URL_SECRET} HTTP/1.1" 401\n'
    assert URL_SECRET not in redact_log(old + f"Authorization: Bearer {URL_SECRET}")


def test_the_gateway_refuses_an_oversized_body_before_reading_it(gateway) -> None:
    store, url = gateway
    # A deployment that is "running" where nothing listens: a body that got past the
    # limit would be forwarded and answered 502.
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{unused.getsockname()[1]}"
    unused.close()
    set_routes(store, {"blue": 100}, {"blue": {"url": dead, "max_body_bytes": 4096}})
    head = (
        f"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {BIG}\r\n\r\n"
    )
    assert status_line(raw_request(url, head)).startswith("HTTP/1.1 413")  # no body sent
    chunked = (
        f"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"a" * 3000
    body = (f"{len(piece):x}\r\n".encode() + piece + b"\r\n") * 2
    assert status_line(raw_request(url, chunked, body)).startswith("HTTP/1.1 413")
    small = httpx.post(url + "/score", json={"input_data": ["hi"]}, headers=AUTH)
    assert small.status_code == 502  # within the limit: forwarded


def test_a_connection_that_never_finishes_its_headers_is_closed(gateway) -> None:
    _, url = gateway
    answer = raw_request(url, "POST /score HTTP/1.1\r\nHost: x\r\nAuthor", wait_s=90)
    assert answer == b""  # closed by the server, not by our deadline


def test_gateway_readiness_follows_the_deployments_that_take_traffic(
    gateway, scoring_server
) -> None:
    store, url = gateway
    set_routes(store, {}, {"blue": {"url": scoring_server.url}})
    assert httpx.get(url + "/readiness").status_code == 503  # nothing takes traffic
    set_routes(store, {"blue": 100}, {"blue": {"url": None}})
    assert httpx.get(url + "/readiness").status_code == 503  # blue is not running
    set_routes(store, {"blue": 100}, {"blue": {"url": scoring_server.url}})
    assert httpx.get(url + "/readiness").status_code == 200
    assert httpx.get(url + "/liveness").status_code == 200


# -- the scoring server --------------------------------------------------------------------


def test_the_servers_keys_are_not_in_its_environment(scoring_server) -> None:
    environ = Path(f"/proc/{scoring_server.pid}/environ").read_bytes()
    assert KEY.encode() not in environ and OTHER_KEY.encode() not in environ


def test_stats_need_the_key(scoring_server) -> None:
    assert httpx.get(scoring_server.url + "/stats").status_code == 401
    assert httpx.get(scoring_server.url + "/stats", headers=AUTH).status_code == 200


def test_the_server_refuses_an_oversized_body_with_413_before_reading_it(scoring_server) -> None:
    head = (
        f"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {BIG}\r\n\r\n"
    )
    answer = raw_request(scoring_server.url, head)
    assert status_line(answer).startswith("HTTP/1.1 413")
    assert b"at most" in answer


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"input_data": ["hi"], "params": {"temperature": NaN, "do_sample": true}}', "NaN"),
        ('{"input_data": ["hi"], "params": {"temperature": 1e999, "do_sample": true}}', "finite"),
        ('{"input_data": ["hi"], "params": {"max_new_tokens": Infinity}}', "Infinity"),
        ('{"input_data": ["hi"], "params": {"max_new_tokens": 1e999}}', "whole number"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=["nan", "overflow-float", "infinity", "overflow-int", "deep-nesting"],
)
def test_hostile_json_is_a_400_with_a_sentence(scoring_server, body: str, says: str) -> None:
    response = httpx.post(
        scoring_server.scoring_uri,
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]


def test_a_prompt_far_over_the_context_is_refused_untokenized(scoring_server) -> None:
    long = "word " * 200_000  # 1 MB of text: fits the body limit, not the context
    response = httpx.post(
        scoring_server.scoring_uri, json={"input_data": [long]}, headers=AUTH, timeout=60
    )
    assert response.status_code == 400
    assert "context" in response.json()["error"]


def test_a_key_in_the_servers_url_is_not_logged(scoring_server) -> None:
    response = httpx.post(
        f"{scoring_server.scoring_uri}?key={URL_SECRET}",
        json={"input_data": ["hi"], "params": {"max_new_tokens": 2}},
        headers=AUTH,
        timeout=60,
    )
    assert response.status_code == 200
    text = scoring_server.log_file.read_text()
    assert "/score?" in text and URL_SECRET not in text
