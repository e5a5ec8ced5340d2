"""Raw-socket HTTP/1.1 for system tests: requests as bytes, and a reader of Content-Length framed replies."""
import socket


def request(path, body, extra=b"", version=b"HTTP/1.1", method=b"POST"):
    """A request with a Content-Length body, as bytes."""
    return b"%s %s %s\r\nHost: t\r\nContent-Length: %d\r\n%s\r\n%s" % (method, path.encode(), version, len(body),
                                                                     extra, body)


class Reader:
    """Reads HTTP/1.1 responses (Content-Length framed) off one socket, with a deadline."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def _more(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def response(self, head_only=False):
        """(status, headers, body) of the next reply; `head_only`: a reply to HEAD (no body follows)."""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines[1:])}
        size = 0 if head_only else int(headers.get(b"content-length", b"0"))
        while len(self.buf) < size:
            self._more()
        body, self.buf = self.buf[:size], self.buf[size:]
        return status, headers, body

    def closed(self):
        """True once the server closed (a reset counts as closed); raises socket.timeout past the deadline."""
        try:
            while True:
                self._more()
        except (EOFError, ConnectionResetError):
            return True


def connect(addr, timeout=10):
    """(socket, Reader) connected to (host, port)."""
    s = socket.create_connection(addr, timeout=timeout)
    return s, Reader(s)
