"""Replies over TLS in bounded pieces (fast engine): the TLS transport encrypts each write at once and holds the
ciphertext until the socket takes it, so a large reply is handed over a piece at a time, only while the
transport's buffer is under a small window (its flow control: pause_writing / resume_writing). A connection
waiting on a slow reader then holds about one window of ciphertext, not a copy of every reply."""
import asyncio

TLS_PIECE = 16384           # handed to the transport at a time (one TLS record's worth)
TLS_WINDOW = 16384          # the transport's write high-water mark; also its read-ahead while reading is paused


class TlsSender:
    """Mixin of the fast engine's connection: `outq` (a deque of memoryviews, None when plain), `write_paused`,
    `close_after` and `transport` are the connection's."""

    __slots__ = ()

    @staticmethod
    def bound_tls_buffers(transport: asyncio.Transport):
        transport.set_write_buffer_limits(high=TLS_WINDOW)
        transport.set_read_buffer_limits(high=TLS_WINDOW)

    def pause_writing(self):
        self.write_paused = True

    def resume_writing(self):
        self.write_paused = False
        if self.outq:
            self._pump()

    def _send(self, *parts):
        """TLS: queues `parts` (never copied) and hands the transport bounded pieces while it takes them."""
        for part in parts:
            if len(part):
                self.outq.append(memoryview(part))
        self._pump()

    def _pump(self):
        outq, transport = self.outq, self.transport
        while outq and not self.write_paused:
            if transport.is_closing():
                outq.clear()
                break
            part = outq[0]
            if len(part) > TLS_PIECE:
                outq[0] = part[TLS_PIECE:]
                part = part[:TLS_PIECE]
            else:
                outq.popleft()
            transport.write(part)
        if self.close_after and not outq:
            self.close_after = False
            transport.close()

