"""HTTP/1.1 request heads and response heads of the device API, as bytes (what the fast engine parses/writes)."""
from mindspore_federated.server.device_api import HEALTH_PATH, UPLOAD_ROUNDS

MAX_HEAD = 16 * 1024        # request line + headers
MAX_CHUNK_LINE = 1024
STATUS_LINES = {200: b"200 OK", 400: b"400 Bad Request", 404: b"404 Not Found", 405: b"405 Method Not Allowed",
                500: b"500 Internal Server Error"}
OCTETS, JSON, TEXT = b"application/octet-stream", b"application/json", b"text/plain; charset=utf-8"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class BadRequest(Exception):
    """The request cannot be parsed: answered 400, then the connection closes."""


class Request:
    """What the head of one request says."""

    __slots__ = ("name", "path", "length", "chunked", "keep_alive", "expect_continue", "upload", "http10")

    def __init__(self, name, path, length, chunked, keep_alive, expect_continue, http10):
        self.name, self.path, self.length, self.chunked = name, path, length, chunked
        self.keep_alive, self.expect_continue, self.http10 = keep_alive, expect_continue, http10
        self.upload = name in UPLOAD_ROUNDS


def parse_head(head, routes):
    """A Request from the bytes before the blank line; raises BadRequest."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise BadRequest("bad request line")
    method, target, version = parts
    length, chunked, connection, expect = None, False, b"", b""
    for line in lines[1:]:
        key, sep, value = line.partition(b":")
        if not sep or not key or key != key.strip():
            raise BadRequest("bad header line")
        key, value = key.lower(), value.strip()
        if key == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                raise BadRequest("bad Content-Length")
            length = int(value)
        elif key == b"transfer-encoding":
            if value.lower() != b"chunked":
                raise BadRequest("unsupported Transfer-Encoding")
            chunked = True
        elif key == b"connection":
            connection = value.lower()
        elif key == b"expect":
            expect = value.lower()
    if chunked and length is not None:
        raise BadRequest("both Content-Length and chunked")
    path = target.split(b"?", 1)[0].decode("latin-1")
    keep_alive = b"close" not in connection if version == b"HTTP/1.1" else b"keep-alive" in connection
    name = routes.get(path)
    if name is None and path == HEALTH_PATH and method == b"GET":
        name = ""
    return Request(name, path, length or 0, chunked, keep_alive, expect == b"100-continue", version != b"HTTP/1.1")


def response_head(status, ctype, body, keep_alive, http10=False):
    connection = (b"Connection: keep-alive\r\n" if http10 else b"") if keep_alive else b"Connection: close\r\n"
    return b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
        STATUS_LINES[status], ctype, len(body), connection)
