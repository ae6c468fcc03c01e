"""A static file server for track hubs: HTTP Range requests, CORS, nothing outside the hub.

UCSC, IGV and igv.js read bigWig and 2bit files with HTTP Range requests and expect
``206 Partial Content``; igv.js in a browser also needs CORS headers. Python's
``http.server`` ignores Range (it answers 200 with the whole file), so regtracks serves hubs
with this small server instead:

* ``GET`` and ``HEAD``; one range per request: ``bytes=a-b``, ``bytes=a-``, ``bytes=-n``
  -> ``206`` with ``Content-Range``; a range past the end -> ``416`` with
  ``Content-Range: bytes */size``; several ranges, another unit or a malformed header are
  ignored (``200``, the whole file), as RFC 9110 allows. ``Accept-Ranges: bytes`` always.
* CORS on every answer (``Access-Control-Allow-Origin: *``, ``Access-Control-Expose-Headers:
  Content-Length, Content-Range, Accept-Ranges``) and ``OPTIONS`` preflight (``204``, allowing
  the ``Range`` header and whatever other headers the browser asks for).
* Only files under the hub folder: ``..`` segments (also percent-encoded), symbolic links that
  lead outside and NUL bytes get ``403``; hidden files (a path part starting with ``.``, such
  as the temporaries of a writer at work) and folders without ``index.html`` get ``404``,
  except the hub folder itself: without an ``index.html``, ``/`` redirects (``302``) to the
  igv.js page ``/igv.html`` when there is one.
* HTTP/1.1 keep-alive, ``Cache-Control: no-cache`` (hubs change when predictions are
  re-run). Each connection is served by one thread of a bounded pool (``max_workers``, 32);
  up to ``max_waiting`` (128) more wait their turn, beyond that ``503`` (``Retry-After``). A
  connection silent for ``timeout`` seconds (30) is closed, so idle sockets hold no thread.
* Range numbers longer than the file size's are never parsed (a start that long is past the
  end: ``416``; an end or suffix that long reaches the end of the file).

The library never prints: pass ``log`` (a callable taking one line) to see requests.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from regtracks._util import RegtracksError
from regtracks.config import DEFAULT_SERVE

__all__ = ["HubServer", "HubRequestHandler", "ServerInfo", "make_server", "serve", "server_info"]

CONTENT_TYPES: dict[str, str] = {
    ".txt": "text/plain; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".xml": "application/xml",
    ".json": "application/json",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".tsv": "text/tab-separated-values; charset=utf-8",
    ".bed": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
"""Content types by suffix; everything else (``.bw``, ``.bigWig``, ``.bb``, ``.2bit``, ``.gz``,
...) is ``application/octet-stream``."""

EXPOSED = "Content-Length, Content-Range, Accept-Ranges"
PAGE_NAME = "igv.html"
"""The hub's igv.js page: where ``/`` leads, and the first URL ``regtracks serve`` prints."""
CONNECTION_TIMEOUT = DEFAULT_SERVE.timeout
"""Seconds a connection may send nothing before it is closed."""
MAX_WORKERS = DEFAULT_SERVE.max_workers
"""Connections served at once (one thread each)."""
MAX_WAITING = DEFAULT_SERVE.max_waiting
"""Connections that wait for a thread beyond those; more are answered 503."""
_CHUNK = 1 << 18
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)
_UNSATISFIABLE = (-1, -1)


def content_type(path: str | os.PathLike) -> str:
    """Content type served for ``path`` (by suffix, case-insensitive)."""
    return CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One HTTP byte range -> inclusive ``(first, last)`` byte positions.

    Returns ``None`` when the header is to be ignored (several ranges, other unit, malformed,
    ``last < first``) and ``(-1, -1)`` when the range cannot be satisfied (starts at or past
    ``size``, a zero-length suffix, an empty file).
    """
    m = _RANGE.fullmatch(header)
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None
    a, b = m.groups()
    if a == "":  # suffix: the last n bytes
        n = _bounded_int(b, size)
        if n == 0 or size == 0:
            return _UNSATISFIABLE
        return max(0, size - n), size - 1
    first = _bounded_int(a, size)
    last = _bounded_int(b, size) if b else size - 1
    if b and last < first:
        return None
    if first >= size:
        return _UNSATISFIABLE
    return first, min(last, size - 1)


def _bounded_int(digits: str, size: int) -> int:
    """``int(digits)``, or ``10 ** d`` (``d``: the digits of ``size``) when the number has more
    digits than ``size``: it is past the end of the file either way, and a header of thousands
    of digits is never parsed (Python refuses to convert more than 4,300 digits, and the work
    grows with the square of the length)."""
    digits = digits.lstrip("0") or "0"
    d = len(str(size))
    return 10**d if len(digits) > d else int(digits)


class _Refused(Exception):
    def __init__(self, status: HTTPStatus):
        self.status = status


class HubRequestHandler(BaseHTTPRequestHandler):
    """Serves the files under ``server.root`` (see the module docstring)."""

    server: HubServer
    server_version = "regtracks-serve"
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.connection_timeout  # StreamRequestHandler applies it
        super().setup()

    # -- headers on every answer -----------------------------------------------------------
    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Expose-Headers", EXPOSED)
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")

    # -- methods ---------------------------------------------------------------------------
    def do_OPTIONS(self) -> None:
        asked = self.headers.get("Access-Control-Request-Headers", "")
        allowed = ", ".join(dict.fromkeys(["Range", *[h.strip() for h in asked.split(",")]]))
        self.send_response(HTTPStatus.NO_CONTENT)
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", allowed.rstrip(", "))
        self.send_header("Access-Control-Max-Age", "86400")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        if not self._redirect_root():
            self._send_file(body=True)

    def do_HEAD(self) -> None:
        if not self._redirect_root():
            self._send_file(body=False)

    # -- the work --------------------------------------------------------------------------
    def _redirect_root(self) -> bool:
        """Answer ``/`` with a redirect to the igv.js page, when the hub has no index.html."""
        if urlsplit(self.path).path not in ("", "/"):
            return False
        root = self.server.real_root
        if (root / "index.html").is_file() or not (root / PAGE_NAME).is_file():
            return False
        self.send_response(HTTPStatus.FOUND)
        self.send_header("Location", "/" + PAGE_NAME)
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        return True

    def _resolve(self) -> Path:
        """The file a request names, or raise :class:`_Refused`."""
        raw = urlsplit(self.path).path
        try:
            text = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise _Refused(HTTPStatus.BAD_REQUEST) from None
        if "\x00" in text or "\\" in text:
            raise _Refused(HTTPStatus.FORBIDDEN)
        parts = [p for p in text.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise _Refused(HTTPStatus.FORBIDDEN)
        if any(p.startswith(".") for p in parts):
            raise _Refused(HTTPStatus.NOT_FOUND)
        root = self.server.real_root
        real = Path(os.path.realpath(root.joinpath(*parts)))
        if real != root and root not in real.parents:
            raise _Refused(HTTPStatus.FORBIDDEN)
        if real.is_dir():
            real = real / "index.html"
        if not real.is_file():
            raise _Refused(HTTPStatus.NOT_FOUND)
        return real

    def _send_file(self, *, body: bool) -> None:
        try:
            path = self._resolve()
            fh = open(path, "rb")
        except _Refused as r:
            self.send_error(r.status)
            return
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        with fh:
            st = os.fstat(fh.fileno())
            size = st.st_size
            first, last = 0, size - 1
            status = HTTPStatus.OK
            header = self.headers.get("Range")
            if header is not None:
                rng = parse_range(header, size)
                if rng == _UNSATISFIABLE:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Accept-Ranges", "bytes")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if rng is not None:
                    first, last = rng
                    status = HTTPStatus.PARTIAL_CONTENT
            length = last - first + 1
            self.send_response(status)
            self.send_header("Content-Type", content_type(path))
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Last-Modified", formatdate(st.st_mtime, usegmt=True))
            self.send_header("Cache-Control", "no-cache")
            if status == HTTPStatus.PARTIAL_CONTENT:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.end_headers()
            if not body or length <= 0:
                return
            fh.seek(first)
            left = length
            try:
                while left > 0:
                    data = fh.read(min(_CHUNK, left))
                    if not data:  # the file shrank while we sent it
                        self.close_connection = True
                        return
                    self.wfile.write(data)
                    left -= len(data)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                self.close_connection = True  # clients cancel reads often; or stopped reading


class HubServer(ThreadingHTTPServer):
    """A threading HTTP server of one hub folder, with a bounded pool of worker threads.

    Each connection is served by one of at most ``max_workers`` threads; up to
    ``max_waiting`` more connections wait (in the order they came) for a thread to be free,
    and connections beyond those are answered ``503 Service Unavailable`` (``Retry-After: 1``)
    and closed at once. A connection that sends nothing for ``connection_timeout`` seconds
    (between requests of a keep-alive connection too) is closed, so idle clients give their
    thread back.

    Attributes
    ----------
    root : Path
        The folder served (as given, made absolute).
    real_root : Path
        Its real path (symbolic links resolved); nothing outside it is served.
    log : callable or None
        Receives one line per request and per error.
    connection_timeout : float
        Seconds a connection may stay silent.
    max_workers, max_waiting : int
        The bounds above.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # listen backlog

    def __init__(
        self,
        root: Path,
        address: tuple[str, int],
        log: Callable[[str], None] | None,
        *,
        connection_timeout: float = CONNECTION_TIMEOUT,
        max_workers: int = MAX_WORKERS,
        max_waiting: int = MAX_WAITING,
    ):
        self.root = root
        self.real_root = Path(os.path.realpath(root))
        self.log = log
        self.connection_timeout = connection_timeout
        self.max_workers = max_workers
        self.max_waiting = max_waiting
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._open = 0  # connections accepted and not finished: waiting + served
        self._served = 0
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, HubRequestHandler)

    @property
    def active(self) -> int:
        """Connections being served now (each holds a worker thread)."""
        return self._served

    @property
    def waiting(self) -> int:
        """Connections accepted and waiting for a worker thread."""
        with self._lock:
            return self._open - self._served

    def process_request(self, request, client_address) -> None:
        """Queue the connection for the pool (starting a worker while fewer than
        ``max_workers`` run), or answer 503 when the pool and its queue are full."""
        with self._lock:
            full = self._open >= self.max_workers + self.max_waiting
            if not full:
                self._open += 1
                if len(self._workers) < self.max_workers:
                    t = threading.Thread(
                        target=self._work, name=f"regtracks-serve-{len(self._workers)}"
                    )
                    t.daemon = True
                    self._workers.append(t)
                    t.start()
        if full:
            self._refuse(request, client_address)
            return
        self._queue.put((request, client_address))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:  # server_close
                return
            request, client_address = item
            with self._lock:
                self._served += 1
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
                with self._lock:
                    self._served -= 1
                    self._open -= 1

    def _refuse(self, request, client_address) -> None:
        body = b"busy: too many connections, try again\n"
        head = (
            "HTTP/1.1 503 Service Unavailable\r\n"
            "Retry-After: 1\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Access-Control-Allow-Origin: *\r\n"
            "Connection: close\r\n\r\n"
        )
        try:
            request.settimeout(1.0)  # a fresh socket's buffer takes this at once
            request.sendall(head.encode() + body)
            with contextlib.suppress(OSError):  # read what came, so closing sends no reset
                request.recv(65536, socket.MSG_DONTWAIT)
        except OSError:
            pass
        finally:
            self.shutdown_request(request)
        if self.log is not None:
            self.log(f"{client_address[0]} refused: {self.max_workers} connections served and "
                     f"{self.max_waiting} waiting (503)")  # fmt: skip

    def server_close(self) -> None:
        super().server_close()
        with self._lock:
            workers = len(self._workers)
        for _ in range(workers):
            self._queue.put(None)

    def handle_error(self, request, client_address) -> None:
        if self.log is not None:
            import traceback

            self.log(
                f"{client_address[0]} error: {traceback.format_exc().strip().splitlines()[-1]}"
            )


@dataclass(frozen=True)
class ServerInfo:
    """Where a :class:`HubServer` listens and the URLs worth opening.

    ``igv_url`` (the igv.js page, to open in a web browser) and ``hub_url`` (``hub.txt``, for
    UCSC's "My Hubs") are ``None`` when the hub has no ``igv.html`` / ``hub.txt``.
    """

    host: str
    port: int
    base_url: str
    hub_url: str | None
    igv_url: str | None


def make_server(
    root: str | os.PathLike,
    host: str = DEFAULT_SERVE.host,
    port: int = DEFAULT_SERVE.port,
    *,
    log: Callable[[str], None] | None = None,
    timeout: float = CONNECTION_TIMEOUT,
    max_workers: int = MAX_WORKERS,
    max_waiting: int = MAX_WAITING,
) -> HubServer:
    """Bind a :class:`HubServer` to ``host:port`` (``port=0``: any free port); not yet serving.

    ``timeout``: seconds a connection may stay silent before it is closed; ``max_workers``:
    connections served at once; ``max_waiting``: connections that wait for a free thread
    beyond those (more are answered 503).

    Raises
    ------
    RegtracksError
        ``root`` is not a folder, the address cannot be bound (port in use, bad host), or a
        bound is out of range.
    """
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise RegtracksError(f"{root}: hub folder not found")
    if not 0 <= int(port) <= 65535:
        raise RegtracksError(f"port {port} is not between 0 and 65535")
    if not timeout > 0 or timeout == float("inf"):
        raise RegtracksError(f"the connection timeout must be a positive number, got {timeout}")
    if int(max_workers) < 1:
        raise RegtracksError(f"max_workers must be at least 1, got {max_workers}")
    if int(max_waiting) < 0:
        raise RegtracksError(f"max_waiting must be >= 0, got {max_waiting}")
    try:
        return HubServer(
            root,
            (host, int(port)),
            log,
            connection_timeout=float(timeout),
            max_workers=int(max_workers),
            max_waiting=int(max_waiting),
        )
    except OSError as exc:
        raise RegtracksError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def server_info(server: HubServer) -> ServerInfo:
    """The address a server really listens on (the port chosen for 0) and the hub's URLs."""
    host, port = server.server_address[:2]
    shown = {"0.0.0.0": "127.0.0.1", "::": "localhost", "": "127.0.0.1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    base = f"http://{shown}:{port}/"
    root = server.real_root
    hub = base + "hub.txt" if (root / "hub.txt").is_file() else None
    igv = base + PAGE_NAME if (root / PAGE_NAME).is_file() else None
    return ServerInfo(host=host, port=port, base_url=base, hub_url=hub, igv_url=igv)


def serve(
    root: str | os.PathLike,
    *,
    host: str = DEFAULT_SERVE.host,
    port: int = DEFAULT_SERVE.port,
    log: Callable[[str], None] | None = None,
    on_ready: Callable[[ServerInfo], None] | None = None,
    timeout: float = CONNECTION_TIMEOUT,
    max_workers: int = MAX_WORKERS,
    max_waiting: int = MAX_WAITING,
) -> None:
    """Serve ``root`` until Ctrl-C (then return normally).

    Parameters
    ----------
    root : str or Path
        The hub folder.
    host, port : str, int
        Address to listen on; ``port=0`` picks a free port (see ``on_ready``).
    log : callable, optional
        Receives one line per request.
    on_ready : callable, optional
        Called with the :class:`ServerInfo` once the port is bound, before serving.
    timeout, max_workers, max_waiting : float, int, int
        See :func:`make_server`.
    """
    server = make_server(
        root,
        host,
        port,
        log=log,
        timeout=timeout,
        max_workers=max_workers,
        max_waiting=max_waiting,
    )
    try:
        if on_ready is not None:
            on_ready(server_info(server))
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    finally:
        server.server_close()
