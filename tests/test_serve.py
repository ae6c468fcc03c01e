"""Hub server: ranges (206/416), HEAD, CORS, OPTIONS, content types, traversal, CLI."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from regtracks._util import RegtracksError
from regtracks.cli import app
from regtracks.tracks.serve import make_server, parse_range, server_info

BLOB = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable


@pytest.fixture()
def hub(tmp_path):
    root = tmp_path / "hub"
    (root / "hg38").mkdir(parents=True)
    (root / "hub.txt").write_text("hub test\n")
    (root / "igv.html").write_text("<html></html>\n")
    (root / "hg38" / "CTCF.bw").write_bytes(BLOB)
    (root / "hg38" / "genome.2bit").write_bytes(b"\x43\x27\x41\x1a")
    (root / "session.xml").write_text("<Session/>")
    (root / "empty.txt").write_bytes(b"")
    (root / ".CTCF.bw.x1.tmp.bw").write_bytes(b"half")
    (tmp_path / "secret.txt").write_text("outside the hub")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    os.symlink(root / "hg38" / "CTCF.bw", root / "inside-link.bw")
    return root


@pytest.fixture()
def server(hub):
    lines = []
    srv = make_server(hub, "127.0.0.1", 0, log=lines.append)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    srv.lines = lines
    yield srv
    srv.shutdown()
    srv.server_close()


def _get(server, path, headers=None, method="GET"):
    """(status, headers, body) of one request; errors are answers too."""
    port = server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, resp.headers, body


def test_full_get_and_headers(server):
    status, h, body = _get(server, "/hg38/CTCF.bw")
    assert status == 200 and body == BLOB
    assert h["Content-Length"] == str(len(BLOB))
    assert h["Accept-Ranges"] == "bytes"
    assert h["Content-Type"] == "application/octet-stream"
    assert h["Access-Control-Allow-Origin"] == "*"
    assert "Content-Range" in h["Access-Control-Expose-Headers"]


@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=100-199", 100, 199),
        ("bytes=10000-", 10000, 10239),
        ("bytes=-100", 10140, 10239),
        ("bytes=10200-99999", 10200, 10239),  # end clipped to the file
        ("bytes=-999999", 0, 10239),  # suffix longer than the file
    ],
)
def test_ranges(server, spec, first, last):
    status, h, body = _get(server, "/hg38/CTCF.bw", {"Range": spec})
    assert status == 206
    assert body == BLOB[first : last + 1]
    assert h["Content-Range"] == f"bytes {first}-{last}/{len(BLOB)}"
    assert h["Content-Length"] == str(last - first + 1)
    assert h["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("spec", ["bytes=10240-", "bytes=99999-100000", "bytes=-0"])
def test_unsatisfiable_range(server, spec):
    status, h, body = _get(server, "/hg38/CTCF.bw", {"Range": spec})
    assert status == 416 and body == b""
    assert h["Content-Range"] == f"bytes */{len(BLOB)}"


@pytest.mark.parametrize("spec", ["bytes=0-1,5-6", "items=0-5", "bytes=9-3", "garbage"])
def test_ignored_ranges_give_the_whole_file(server, spec):
    status, _, body = _get(server, "/hg38/CTCF.bw", {"Range": spec})
    assert status == 200 and body == BLOB


def test_head(server):
    status, h, body = _get(server, "/hg38/CTCF.bw", method="HEAD")
    assert status == 200 and body == b"" and h["Content-Length"] == str(len(BLOB))
    status, h, body = _get(server, "/hg38/CTCF.bw", {"Range": "bytes=5-9"}, method="HEAD")
    assert status == 206 and body == b"" and h["Content-Range"] == "bytes 5-9/10240"


def test_options_preflight(server):
    status, h, body = _get(
        server,
        "/hg38/CTCF.bw",
        {
            "Origin": "https://igv.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range, if-none-match",
        },
        method="OPTIONS",
    )
    assert status == 204 and body == b""
    assert h["Access-Control-Allow-Origin"] == "*"
    assert "GET" in h["Access-Control-Allow-Methods"]
    allowed = [x.strip().lower() for x in h["Access-Control-Allow-Headers"].split(",")]
    assert "range" in allowed and "if-none-match" in allowed


def test_content_types(server):
    assert _get(server, "/hub.txt")[1]["Content-Type"].startswith("text/plain")
    assert _get(server, "/igv.html")[1]["Content-Type"].startswith("text/html")
    assert _get(server, "/session.xml")[1]["Content-Type"] == "application/xml"
    assert _get(server, "/hg38/genome.2bit")[1]["Content-Type"] == "application/octet-stream"
    status, h, body = _get(server, "/empty.txt")
    assert status == 200 and body == b"" and h["Content-Length"] == "0"
    assert _get(server, "/empty.txt", {"Range": "bytes=0-"})[0] == 416


@pytest.mark.parametrize(
    ("path", "codes"),
    [
        ("/../secret.txt", {403, 404}),
        ("/hg38/../../secret.txt", {403, 404}),
        ("/%2e%2e/secret.txt", {403}),
        ("/hg38/%2E%2E/%2e%2e/secret.txt", {403}),
        ("/..%2fsecret.txt", {403}),
        ("/link.txt", {403}),  # a symbolic link leading outside
        ("/%00hub.txt", {403}),
        ("/.CTCF.bw.x1.tmp.bw", {404}),  # a writer's temporary
        ("/missing.bw", {404}),
        ("/hg38/", {404}),  # a folder without index.html
        ("/%ff", {400}),
    ],
)
def test_refused(server, path, codes):
    status, h, body = _get(server, path)
    assert status in codes
    assert b"outside the hub" not in body
    assert h["Access-Control-Allow-Origin"] == "*"


def test_root_redirects_to_the_igv_page(server, hub):
    for method in ("GET", "HEAD"):
        status, h, body = _get(server, "/", method=method)
        assert status == 302 and h["Location"] == "/igv.html" and body == b""
        assert h["Access-Control-Allow-Origin"] == "*"
    assert _get(server, "/?x=1")[0] == 302
    assert _get(server, "/hg38/")[0] == 404  # other folders: as before
    (hub / "index.html").write_text("<p>index</p>")  # a hub's own index.html wins
    assert _get(server, "/")[:3:2] == (200, b"<p>index</p>")
    (hub / "index.html").unlink()
    (hub / "igv.html").unlink()  # no page: nothing to lead to
    assert _get(server, "/")[0] == 404


def test_links_inside_and_query_strings_are_fine(server):
    assert _get(server, "/inside-link.bw")[2] == BLOB
    assert _get(server, "/hub.txt?cache=123")[2] == b"hub test\n"


def test_urllib_and_keep_alive(server):
    base = server_info(server).base_url
    req = urllib.request.Request(base + "hg38/CTCF.bw", headers={"Range": "bytes=1-3"})
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 206 and resp.read() == BLOB[1:4]
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(base + "nothing.txt")
    assert err.value.code == 404
    # several requests on one connection (HTTP/1.1), as IGV does
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    for a in (0, 500, 9000):
        conn.request("GET", "/hg38/CTCF.bw", headers={"Range": f"bytes={a}-{a + 9}"})
        resp = conn.getresponse()
        assert resp.status == 206 and resp.read() == BLOB[a : a + 10]
    conn.close()
    assert any("CTCF.bw" in line for line in server.lines)  # the log callback got the requests


def test_server_info(hub):
    srv = make_server(hub, "127.0.0.1", 0)
    info = server_info(srv)
    srv.server_close()
    assert info.port > 0 and info.base_url == f"http://127.0.0.1:{info.port}/"
    assert info.hub_url == info.base_url + "hub.txt"
    assert info.igv_url == info.base_url + "igv.html"
    (hub / "igv.html").unlink()
    srv = make_server(hub, "127.0.0.1", 0)
    assert server_info(srv).igv_url is None
    srv.server_close()


def test_parse_range_by_hand():
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes = 90 - ", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=100-", 100) == (-1, -1)
    assert parse_range("bytes=-", 100) is None


def test_parse_range_never_parses_numbers_longer_than_the_size():
    huge = "9" * 5000  # int() refuses more than 4,300 digits
    assert parse_range(f"bytes={huge}-", 100) == (-1, -1)  # starts past the end
    assert parse_range(f"bytes={huge}-{huge}9", 100) == (-1, -1)
    assert parse_range(f"bytes=5-{huge}", 100) == (5, 99)  # the end is clipped to the file
    assert parse_range(f"bytes=-{huge}", 100) == (0, 99)  # a suffix longer than the file
    assert parse_range(f"bytes={'0' * 5000}7-{'0' * 5000}9", 100) == (7, 9)  # leading zeros
    assert parse_range("bytes=1000-", 999) == (-1, -1)  # one digit more than the size
    assert parse_range("bytes=998-1000", 999) == (998, 998)
    assert parse_range("bytes=0-", 0) == (-1, -1)


@contextlib.contextmanager
def _serving(hub, **kw):
    lines = []
    srv = make_server(hub, "127.0.0.1", 0, log=lines.append, **kw)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    srv.lines = lines
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _connect(srv):
    sock = socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=30)
    return sock


def _wait_until(cond, what):
    """Wait for a condition of the server (a state reached, not a duration measured)."""
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < 30, what
        time.sleep(0.01)


def _answer(sock) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_range_of_thousands_of_digits_is_answered(server):
    huge = "9" * 5000
    status, h, body = _get(server, "/hg38/CTCF.bw", {"Range": f"bytes={huge}-"})
    assert status == 416 and body == b"" and h["Content-Range"] == f"bytes */{len(BLOB)}"
    status, h, body = _get(server, "/hg38/CTCF.bw", {"Range": f"bytes=10-{huge}"})
    assert status == 206 and body == BLOB[10:]
    status, h, body = _get(server, "/hg38/CTCF.bw", {"Range": f"bytes=-{huge}"})
    assert status == 206 and body == BLOB
    assert not [line for line in server.lines if "error" in line]


def test_idle_connections_are_closed_after_the_timeout(hub):
    with _serving(hub, timeout=0.2) as srv:
        sock = _connect(srv)  # connects and says nothing
        assert _answer(sock) == b""  # closed by the server (the client would wait 30 s)
        sock.close()
        # a keep-alive connection that goes quiet after a request: answered, then closed
        sock = _connect(srv)
        sock.sendall(b"GET /hub.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        data = _answer(sock)
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hub test\n")
        sock.close()
        _wait_until(lambda: srv.active == 0, "the idle connections were not closed")
    assert sum("timed out" in line for line in srv.lines) == 2


def test_the_thread_pool_is_bounded(hub):
    with _serving(hub, timeout=60, max_workers=2, max_waiting=1) as srv:
        idle = [_connect(srv), _connect(srv)]  # hold both threads: they wait for a request
        _wait_until(lambda: srv.active == 2, "the two connections are not being served")
        third = _connect(srv)
        _wait_until(lambda: srv.waiting == 1, "the third connection is not waiting")
        third.sendall(b"GET /hub.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        fourth = _connect(srv)  # beyond workers + waiting: refused at once
        refused = _answer(fourth)
        assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"Retry-After: 1" in refused and b"Access-Control-Allow-Origin: *" in refused
        fourth.close()
        third.setblocking(False)  # both threads are held: nobody has answered it
        with pytest.raises(BlockingIOError):
            third.recv(1)
        third.setblocking(True)
        third.settimeout(30)
        assert srv.active == 2 and len(srv._workers) == 2
        idle[0].close()  # a thread is free: the waiting connection is served
        data = _answer(third)
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hub test\n")
        third.close()
        idle[1].close()
        _wait_until(lambda: srv.active == 0 and srv.waiting == 0, "connections left open")
        assert len(srv._workers) == 2  # no thread was started beyond the bound
        assert _get(srv, "/hub.txt")[0] == 200
    assert any("refused" in line and "503" in line for line in srv.lines)


def test_server_bounds_are_checked(hub):
    for kw, needle in (
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"max_workers": 0}, "max_workers"),
        ({"max_waiting": -1}, "max_waiting"),
    ):
        with pytest.raises(RegtracksError, match=needle):
            make_server(hub, "127.0.0.1", 0, **kw)


def test_cli_missing_hub_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "nope")])
    assert result.exit_code == 1
    out = result.output.strip()
    assert "hub folder not found" in out and len(out.splitlines()) == 1


def test_cli_port_in_use_is_one_line(hub):
    srv = make_server(hub, "127.0.0.1", 0)
    try:
        result = CliRunner().invoke(app, ["serve", str(hub), "--port", str(srv.server_address[1])])
    finally:
        srv.server_close()
    assert result.exit_code == 1 and "cannot listen" in result.output


def test_cli_prints_urls_and_stops_cleanly_on_ctrl_c(hub):
    proc = subprocess.Popen(
        [sys.executable, "-m", "regtracks", "serve", str(hub), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the page to open first, then hub.txt for UCSC (the base URL goes to stderr)
        igv_line = proc.stdout.readline()
        hub_line = proc.stdout.readline()
        igv_url, hub_url = igv_line.split()[-1], hub_line.split()[-1]
        assert igv_line.startswith("igv.js page") and "browser" in igv_line
        assert igv_url.startswith("http://127.0.0.1:") and igv_url.endswith("/igv.html")
        assert hub_line.startswith("track hub") and hub_url.endswith("/hub.txt")
        with urllib.request.urlopen(hub_url) as resp:
            assert resp.read() == b"hub test\n"
        with urllib.request.urlopen(igv_url.rsplit("/", 1)[0] + "/") as resp:  # / -> the page
            assert resp.url == igv_url and resp.read() == b"<html></html>\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert "stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
