"""Server-to-server traffic over the C++ communicator: ping, model fetch and the FedAvg all-reduce."""
import asyncio
import json
import struct
import zlib
from collections import OrderedDict

import numpy as np

from mindspore_federated import comm
from mindspore_federated.log import get_logger
from mindspore_federated.server.model import Model

logger = get_logger(__name__)
MSG_PING = 1
MSG_GET_MODEL = 2
MSG_PUT_MODEL = 3   # a leaving server hands the model it aggregated to the servers that did not aggregate
PING_TIMEOUT_S = 1.0
FETCH_TIMEOUT_S = 5.0
ALLREDUCE_TIMEOUT_S = 10.0
FRAME_SLACK_BYTES = 4 << 20


def max_frame_bytes(spec):
    """The communicator's frame cap for a cluster serving `spec`.

    The largest legitimate frames are model messages (get-model replies, model offers): a JSON header of
    about 32 bytes per feature plus the float32 weights. All-reduce frames are cut into segments of at
    most 1 MiB (and never more than the cap), pings and errors are tiny. Twice the model plus a few MiB
    never rejects those, yet a forged header can no longer make a server reserve 2 GiB.
    """
    header = 256 + sum(len(name.encode()) + 32 for name in spec.order)
    return 2 * spec.total_bytes() + header + FRAME_SLACK_BYTES


def encode_model(iteration, model, instance=None):
    """Length-prefixed JSON header (names, sizes) followed by the raw float32 weights."""
    names = list(model.weights)
    fields = {"iteration": iteration, "names": names, "sizes": [int(model.weights[n].size) for n in names]}
    if instance is not None:
        fields["instance"] = instance
    header = json.dumps(fields).encode()
    return b"".join([struct.pack("<I", len(header)), header, *(model.weights[n].tobytes() for n in names)])


def decode_model_message(payload):
    """(header dict, Model) of an encode_model payload; ValueError when it is malformed."""
    try:
        (size,) = struct.unpack_from("<I", payload, 0)
        header = json.loads(payload[4:4 + size])
        weights = OrderedDict()
        offset = 4 + size
        if len(header["names"]) != len(header["sizes"]):
            raise ValueError("names and sizes differ in length")
        for name, count in zip(header["names"], header["sizes"]):
            weights[name] = np.frombuffer(payload, np.float32, count, offset)
            offset += 4 * count
    except (struct.error, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed model message: {exc}") from None
    if offset != len(payload):
        raise ValueError("malformed model message: trailing bytes")
    return header, Model(weights)


def decode_model(payload):
    header, model = decode_model_message(payload)
    return header["iteration"], model


def allreduce_tag(instance, iteration):
    """Same on every rank of one (instance, iteration); two tags per iteration (f32, f64)."""
    return ((zlib.crc32(instance.encode()) & 0xFFFFF) << 32 | (iteration & 0xFFFFFFFF)) << 1


class Peers:
    """The node's communicator and the requests it answers."""

    def __init__(self, tcp_ip, max_connections, max_frame=None, tls=None):
        """`tls`: None (plain TCP) or tls.peer_link_options(...): every link is then mutual TLS."""
        frame = int(max_frame) if max_frame is not None else comm.DEFAULT_MAX_FRAME_BYTES
        self.comm = comm.Communicator(tcp_ip, 0, max_connections, frame, tls=tls)
        self.max_frame_bytes = max_frame
        self.comm.start()
        self.address = self.comm.address
        self._serving = None

    def serve(self, node):
        """Starts answering peers' requests on the running loop."""
        async def handler(peer, msg_type, payload):
            if msg_type == MSG_PING:
                return b"pong"
            if msg_type == MSG_GET_MODEL:
                request = json.loads(payload)
                model = node.model_of(request["iteration"], request.get("instance"), request.get("stage"))
                if model is None:
                    raise LookupError(f"no model of iteration {request['iteration']}")
                return encode_model(request["iteration"], model)
            if msg_type == MSG_PUT_MODEL:
                header, model = decode_model_message(payload)
                taken = node.offer_model(header.get("instance"), int(header["iteration"]), model)
                return b"1" if taken else b"0"
            raise ValueError(f"unknown message type {msg_type}")

        self._serving = asyncio.get_running_loop().create_task(comm.serve_requests(self.comm, handler))

    async def ping(self, address, timeout=PING_TIMEOUT_S):
        """'ok', 'timeout' (peer may be stopped) or 'refused' (peer is gone)."""
        try:
            await comm.request(self.comm, address, MSG_PING, b"", timeout)
            return "ok"
        except comm.CommTimeoutError:
            return "timeout"
        except comm.CommError:
            return "refused"

    async def fetch_model(self, addresses, iteration, instance, stage=None):
        """The model of `iteration` (hybrid `stage`: see EngineContext.model_of) from the first peer (TCP
        address) that has it, or None."""
        request = {"iteration": iteration, "instance": instance}
        if stage is not None:
            request["stage"] = stage
        payload = json.dumps(request).encode()
        for address in addresses:
            try:
                reply = await comm.request(self.comm, address, MSG_GET_MODEL, payload, FETCH_TIMEOUT_S)
                return decode_model(reply)[1]
            except comm.CommError as exc:
                logger.debug("model %s not available from %s: %s", iteration, address, exc)
        return None

    async def offer_model(self, addresses, iteration, instance, model, timeout=FETCH_TIMEOUT_S):
        """Sends the final model of `iteration` to every address at once; returns how many took it."""
        if not addresses:
            return 0
        payload = encode_model(iteration, model, instance)
        results = await asyncio.get_running_loop().run_in_executor(
            None, self.comm.broadcast, list(addresses), MSG_PUT_MODEL, payload, timeout)
        taken = 0
        for peer, reply, error in results:
            if reply == b"1":
                taken += 1
            elif error:
                logger.warning("could not hand the model of iteration %s to %s: %s", iteration, peer, error)
        return taken

    async def allreduce(self, addresses, rank, flat, extras, tag):
        """Sums `flat` (float32) and `extras` (float64) in place over the group's servers (TCP addresses,
        same order on every rank)."""
        await comm.allreduce(self.comm, addresses, rank, flat, tag, ALLREDUCE_TIMEOUT_S)
        await comm.allreduce(self.comm, addresses, rank, extras, tag + 1, ALLREDUCE_TIMEOUT_S)

    def cancel_allreduce(self, tag, reason):
        """A running (or later) allreduce of `tag` fails at once: its iteration ended without it."""
        if self.comm is not None:
            self.comm.cancel_collective(tag, reason)
            self.comm.cancel_collective(tag + 1, reason)

    async def close(self):
        if self._serving is not None:
            self._serving.cancel()
            try:
                await self._serving
            except asyncio.CancelledError:
                pass
        await asyncio.get_running_loop().run_in_executor(None, self.comm.stop)
