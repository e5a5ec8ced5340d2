"""Mutations of valid device requests at the HTTP level: method, target, version, headers, framing (lengths
and chunking), line endings, bodies (never in place: the seeds are refused by the server whatever the HTTP
layer does, so no mutant can change the cluster's state), pipelining and how the bytes are split."""
import numpy as np

from mindspore_federated.client import messages as m

CRLF = b"\r\n"
METHODS = [b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT", b"post",
           b"", b"\x00", b"\x00POST", b"PO ST", b"POSTX", b"A" * 2000, b"GET\t", b"\xffPOST", b"PRI", b"M-SEARCH"]
TARGETS = [b"/nope", b"/getModel?x=1", b"*", b"http://h/getModel", b"//getModel", b"/getModel/", b"/%67etModel",
           b"/getModel#f", b"/" + b"a" * 9000, b"", b"/get\x00Model", b"/get Model", b"/healthz", b"healthz",
           b"/\xff\xfe", b"/getModel?" + b"q" * 3000, b"/..%2f..", b"/updateModel\r"]
VERSIONS = [b"HTTP/1.0", b"HTTP/1.10", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1 ", b"http/1.1", b"", b"HTTP/1",
            b"HTTP/1.1x", b"HTTP/3.0", b"HTTP/1.01", b"HTTP/11", b"HTTP/\x001.1", b"HTTP/9.9"]
LENGTHS = [b"0", b"-1", b"+5", b" 5", b"5 ", b"0x10", b"1_0", b"99999999999999999999", b"7" * 4300, b"1e3",
           b"", b"18446744073709551615", b"18446744073709551616", b"00000000000000000000005", b"5, 5", b"\x0b5"]
ENCODINGS = [b"chunked", b" chunked", b"\x0bchunked", b"chunked, chunked", b"gzip", b"gzip, chunked",
             b"chunked, gzip", b"CHUNKED", b"chunked\x00", b"identity", b"", b"\tchunked", b"chunk ed"]
CHUNK_SIZES = [b"1_0", b"0x5", b" 5", b"5 ", b"+5", b"-1", b"ffffffffffffffffffff", b"5;x=y", b"5;" + b"e" * 5000,
               b"", b"g", b"05", b"5\x00", b"5;x=\"a\rb\"", b"0000000000000000000000000005", b"\x0b5"]
JUNK_HEADERS = [b"NoColon", b"Bad Name: x", b" Folded: x", b"\tfold", b"X: a\x00b", b"X: a\x7fb", b"X:\x0bv",
                b"X\x00: v", b": empty-name", b"X: " + b"v" * 20000, b"Connection: upgrade", b"Upgrade: h2c",
                b"Expect: 100-continue", b"Expect: bogus", b"Connection: close", b"Connection: keep-alive",
                b"Host:", b"Host: a\r\nHost: b", b"Content-Type: application/json", b"X: \xff\xfe"]


class Request:
    """One request being mutated: its parts, serialised on `bytes()`."""

    __slots__ = ("method", "target", "version", "headers", "body", "chunks", "chunk_sizes", "tail", "eol")

    def __init__(self, method, target, body, chunked=False):
        self.method, self.target, self.version = method, target, b"HTTP/1.1"
        self.headers = [b"Host: fuzz"]
        self.body = body
        self.chunks = None          # list of body pieces when chunked
        self.chunk_sizes = None     # their size texts (mutable)
        self.tail = b""             # bytes after the body (a trailer, junk)
        self.eol = CRLF
        if chunked:
            self.set_chunked(np.random.default_rng(len(body)))
        elif body or method == b"POST":
            self.headers.append(b"Content-Length: %d" % len(body))

    def set_chunked(self, rng):
        self.headers = [h for h in self.headers if not h.lower().startswith(b"content-length")]
        self.headers.append(b"Transfer-Encoding: chunked")
        cuts = sorted({int(x) for x in rng.integers(0, max(1, len(self.body)), int(rng.integers(0, 4)))})
        edges = [0, *cuts, len(self.body)]
        self.chunks = [self.body[a:b] for a, b in zip(edges, edges[1:]) if b > a]
        self.chunk_sizes = [b"%x" % len(c) for c in self.chunks]

    def head(self):
        eol = self.eol
        line = self.method + b" " + self.target + (b" " + self.version if self.version else b"")
        return eol.join([line, *self.headers]) + eol + eol

    def __bytes__(self):
        if self.chunks is None:
            return self.head() + self.body + self.tail
        parts = [size + CRLF + chunk + CRLF for size, chunk in zip(self.chunk_sizes, self.chunks)]
        return self.head() + b"".join(parts) + b"0" + CRLF + CRLF + self.tail


def seeds(fl_name):
    """(round path, body) of requests every server refuses without a change of state."""
    ones = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
    return [(b"/startFLJob", m.build_start_fl_job(fl_name, "fuzz", 1, 0)),      # data size 0: refused
            (b"/updateModel", m.build_update_model(fl_name, "fuzz-never-started", 1, ones)),
            (b"/getModel", m.build_get_model(fl_name, 1)),
            (b"/getModel", m.build_get_model(fl_name, 99)),
            (b"/healthz", b"")]


# ---- mutators: each takes (request, rng) and changes it in place ------------------------------------------

def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


def mut_method(req, rng):
    req.method = _pick(rng, METHODS)


def mut_target(req, rng):
    req.target = _pick(rng, TARGETS)


def mut_version(req, rng):
    req.version = _pick(rng, VERSIONS)


def mut_length(req, rng):
    req.chunks = None
    req.headers = [h for h in req.headers if not h.lower().startswith((b"content-length", b"transfer-encoding"))]
    choice = int(rng.integers(4))
    if choice == 0:
        req.headers.append(b"Content-Length: " + _pick(rng, LENGTHS))
    elif choice == 1:
        req.headers.append(b"Content-Length: %d" % max(0, len(req.body) + int(rng.integers(-8, 9))))
    elif choice == 2:
        req.headers += [b"Content-Length: %d" % len(req.body)] * 2
    else:
        req.headers += [b"Content-Length: %d" % len(req.body), b"Content-Length: %d" % (len(req.body) + 1)]


def mut_encoding(req, rng):
    if req.chunks is None:
        req.set_chunked(rng)
    req.headers = [h for h in req.headers if not h.lower().startswith(b"transfer-encoding")]
    req.headers.append(b"Transfer-Encoding: " + _pick(rng, ENCODINGS))
    if rng.random() < 0.3:
        req.headers.append(_pick(rng, [b"Transfer-Encoding: chunked", b"Content-Length: %d" % len(req.body)]))


def mut_chunks(req, rng):
    if req.chunks is None:
        req.set_chunked(rng)
    if not req.chunks:
        req.chunks, req.chunk_sizes = [b""], [b"0"]
    i = int(rng.integers(len(req.chunks)))
    choice = int(rng.integers(4))
    if choice == 0:
        req.chunk_sizes[i] = _pick(rng, CHUNK_SIZES)
    elif choice == 1:
        req.chunk_sizes[i] = b"%x" % max(0, len(req.chunks[i]) + int(rng.integers(-3, 4)))
    elif choice == 2:
        req.tail = _pick(rng, [b"X-Trailer: 1" + CRLF + CRLF, b"junk", CRLF, b"\n", b"0" + CRLF + CRLF])
    else:
        req.chunks[i] = req.chunks[i] + b"\n"   # data not followed by CRLF where the size says


def mut_header(req, rng):
    choice = int(rng.integers(4))
    if choice == 0:
        req.headers.insert(int(rng.integers(len(req.headers) + 1)), _pick(rng, JUNK_HEADERS))
    elif choice == 1 and req.headers:
        del req.headers[int(rng.integers(len(req.headers)))]
    elif choice == 2:
        req.headers += [b"X-Many-%d: v" % i for i in range(int(rng.integers(50, 400)))]
    elif req.headers:
        i = int(rng.integers(len(req.headers)))
        req.headers.append(req.headers[i])


def mut_eol(req, rng):
    req.eol = _pick(rng, [b"\n", b"\r", b"\r\r\n", b"\n\r"])


def mut_body(req, rng):
    choice = int(rng.integers(5))
    body = req.body
    if choice == 0:
        body = body[:int(rng.integers(len(body) + 1))]
    elif choice == 1:
        body = body + rng.bytes(int(rng.integers(1, 200)))
    elif choice == 2:
        body = b""
    elif choice == 3:
        body = rng.bytes(len(body))
    else:
        body = body * 2
    keep_length = rng.random() < 0.5   # the declared length stays that of the old body half of the time
    req.body = body
    if req.chunks is not None:
        req.chunks = [body]
        req.chunk_sizes = [b"%x" % len(body)]
    elif not keep_length:
        req.headers = [h if not h.lower().startswith(b"content-length") else b"Content-Length: %d" % len(body)
                       for h in req.headers]


def mut_bytes(data, rng, head_end):
    """Flips, inserts or deletes a few bytes within the head (never the body)."""
    data = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        if not head_end:
            break
        i = int(rng.integers(head_end))
        choice = int(rng.integers(3))
        if choice == 0:
            data[i] ^= 1 << int(rng.integers(8))
        elif choice == 1:
            data.insert(i, int(rng.integers(256)))
        else:
            del data[i]
            head_end -= 1
    return bytes(data)


MUTATORS = (mut_method, mut_target, mut_version, mut_length, mut_encoding, mut_chunks, mut_header, mut_eol,
            mut_body)


class Input:
    """One fuzz input: the bytes (as the pieces they are sent in), the methods of its requests (a reply to
    HEAD has no body), whether the client half-closes after sending, and what was done to it."""

    __slots__ = ("pieces", "methods", "half_close", "ops")

    def __init__(self, pieces, methods, half_close, ops):
        self.pieces, self.methods, self.half_close, self.ops = pieces, methods, half_close, ops


def make_input(seed_list, rng, keep_open_share=0.3):
    """A mutated input: 1-3 requests (the first mutated 1-3 times), sometimes split into pieces."""
    requests, ops = [], []
    for k in range(int(rng.choice([1, 1, 1, 2, 3]))):
        path, body = seed_list[int(rng.integers(len(seed_list)))]
        method = b"GET" if path == b"/healthz" else b"POST"
        req = Request(method, path, body, chunked=rng.random() < 0.2)
        if rng.random() < 0.1:
            req.headers.append(b"Expect: 100-continue")
        if rng.random() < 0.05:
            req.version = b"HTTP/1.0"
        if k == 0:
            for _ in range(int(rng.integers(1, 4))):
                mutator = MUTATORS[int(rng.integers(len(MUTATORS)))]
                mutator(req, rng)
                ops.append(mutator.__name__[4:])
        requests.append(req)
    data = [bytes(r) for r in requests]
    if rng.random() < 0.1:
        data[0] = mut_bytes(data[0], rng, len(requests[0].head()))
        ops.append("bytes")
    raw = b"".join(data)
    pieces = [raw]
    if rng.random() < 0.05 and len(raw) > 1:
        cuts = sorted({int(x) for x in rng.integers(1, len(raw), int(rng.integers(1, 6)))})
        pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
        ops.append("split")
    return Input(pieces, [r.method for r in requests], rng.random() >= keep_open_share, ops)
