"""Hub server: ranges (206/416), HEAD, CORS, OPTIONS, content types, traversal, CLI."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

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
