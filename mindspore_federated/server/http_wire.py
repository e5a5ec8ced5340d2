"""HTTP/1.1 request parsing (llhttp through httptools) and response heads of the device API, as bytes."""
import httptools

from mindspore_federated import errors
from mindspore_federated.server.device_api import HEALTH_PATH, UPLOAD_ROUNDS

MAX_HEAD = 16 * 1024        # request line + headers
STATUS_LINES = {200: b"200 OK", 400: b"400 Bad Request", 404: b"404 Not Found", 405: b"405 Method Not Allowed",
                408: b"408 Request Timeout", 500: b"500 Internal Server Error",
                503: b"503 Service Unavailable"}
OCTETS, JSON, TEXT = b"application/octet-stream", b"application/json", b"text/plain; charset=utf-8"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")


class BadRequest(Exception):
    """The request cannot be parsed: answered 400, then the connection closes."""


class BodyTooLarge(Exception):
    """A chunked body grew past the limit: answered like any oversized body (500 JSON), then closed."""


class Request:
    """What the head of one request says."""

    __slots__ = ("name", "path", "method", "length", "chunked", "keep_alive", "expect_continue", "upload",
                 "http10")

    def __init__(self, name, path, method, length, chunked, keep_alive, expect_continue, http10):
        self.name, self.path, self.method, self.length, self.chunked = name, path, method, length, chunked
        self.keep_alive, self.expect_continue, self.http10 = keep_alive, expect_continue, http10
        self.upload = name in UPLOAD_ROUNDS


class RequestParser:
    """One request through llhttp (strict: no leniencies). `feed_head` takes the bytes of the head as they
    arrive; once it returns a Request, a Content-Length body is the caller's (read straight into its buffer,
    never through here) and a chunked one goes through `feed_chunked` into `body` until `done`."""

    __slots__ = ("_parser", "_url", "_length", "_te", "_expect", "_head_done", "done", "body", "fed",
                 "max_body")

    def __init__(self, max_body):
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._length, self._te, self._expect = 0, 0, b""
        self._head_done = False
        self.done = False
        self.body = None           # bytearray of a chunked body
        self.fed = 0               # bytes of the head fed so far
        self.max_body = max_body

    # ---- llhttp callbacks ----------------------------------------------------------------------
    def on_url(self, url):
        self._url += url

    def on_header(self, name, value):
        size = len(name)   # (cheap filter first: most headers are none of these three)
        if size == 14 and name.lower() == b"content-length":
            self._length = int(value)   # llhttp checked: digits only, no overflow, not twice
        elif size == 17 and name.lower() == b"transfer-encoding":
            self._te += 1
            if self._te > 1 or value.lower() != b"chunked":
                raise BadRequest("unsupported Transfer-Encoding")
        elif size == 6 and name.lower() == b"expect":
            self._expect = value.lower()

    def on_headers_complete(self):
        self._head_done = True

    def on_body(self, data):
        if len(self.body) + len(data) > self.max_body:
            raise BodyTooLarge()
        self.body += data

    def on_message_complete(self):
        self.done = True

    # ---- feeding -------------------------------------------------------------------------------
    def _feed(self, data):
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._te:   # llhttp would skip the body of an upgrade: nothing we serve upgrades anyway
                raise BadRequest("upgrade with a chunked body") from None
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, (BadRequest, BodyTooLarge)):
                raise cause from None
            raise BadRequest(str(exc)) from None

    def feed_head(self, buf, stop, complete, routes):
        """Feeds the head's bytes in `buf` up to `stop` (`complete`: they end with its blank line; `buf` starts
        with the head); the Request once the head is complete, else None. Raises BadRequest."""
        self._feed(buf[self.fed:stop])
        self.fed = stop
        if self._head_done != complete:
            raise BadRequest("bad request head")
        if not complete:
            return None
        line_end = buf.find(b"\r\n")   # llhttp checked the request line and its CRLF
        if buf[line_end - 8:line_end] not in VERSIONS:
            raise BadRequest("unsupported HTTP version")
        parser = self._parser
        method = parser.get_method()
        path = self._url.split(b"?", 1)[0].decode("latin-1")
        name = routes.get(path)
        if name is None and path == HEALTH_PATH and method == b"GET":
            name = ""
        chunked = self._te > 0
        if chunked:
            self.body = bytearray()
        return Request(name, path, method, self._length, chunked, parser.should_keep_alive(),
                       self._expect == b"100-continue", buf[line_end - 1] == 0x30)   # HTTP/1.0

    def feed_chunked(self, buf):
        """Feeds chunked framing from `buf` (a bytearray) up to the end of the body at most; returns how many
        bytes were taken. A body always ends with a line feed, so feeding line by line stops exactly there
        and what follows (a pipelined request) stays in `buf`. Raises BadRequest or BodyTooLarge."""
        pos, end = 0, len(buf)
        while pos < end and not self.done:
            stop = buf.find(b"\n", pos)
            stop = end if stop < 0 else stop + 1
            self._feed(buf[pos:stop])
            pos = stop
        return pos


def response_head(status, ctype, body, keep_alive, http10=False):
    connection = (b"Connection: keep-alive\r\n" if http10 else b"") if keep_alive else b"Connection: close\r\n"
    return b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
        STATUS_LINES[status], ctype, len(body), connection)


BAD_REQUEST_BODY = errors.HTTP_BAD_REQUEST.encode()
