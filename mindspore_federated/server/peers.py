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
PING_TIMEOUT_S = 1.0
FETCH_TIMEOUT_S = 5.0
ALLREDUCE_TIMEOUT_S = 10.0


def encode_model(iteration, model):
    """Length-prefixed JSON header (names, sizes) followed by the raw float32 weights."""
    names = list(model.weights)
    header = json.dumps({"iteration": iteration, "names": names,
                         "sizes": [int(model.weights[n].size) for n in names]}).encode()
    return b"".join([struct.pack("<I", len(header)), header, *(model.weights[n].tobytes() for n in names)])


def decode_model(payload):
    (size,) = struct.unpack_from("<I", payload, 0)
    header = json.loads(payload[4:4 + size])
    weights = OrderedDict()
    offset = 4 + size
    for name, count in zip(header["names"], header["sizes"]):
        weights[name] = np.frombuffer(payload, np.float32, count, offset)
        offset += 4 * count
    return header["iteration"], Model(weights)


def allreduce_tag(instance, iteration):
    """Same on every rank of one (instance, iteration); two tags per iteration (f32, f64)."""
    return ((zlib.crc32(instance.encode()) & 0xFFFFF) << 32 | (iteration & 0xFFFFFFFF)) << 1


class Peers:
    """The node's communicator and the requests it answers."""

    def __init__(self, tcp_ip, max_connections):
        self.comm = comm.Communicator(tcp_ip, 0, max_connections)
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
                model = node.model_of(request["iteration"], request.get("instance"))
                if model is None:
                    raise LookupError(f"no model of iteration {request['iteration']}")
                return encode_model(request["iteration"], model)
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

    async def fetch_model(self, addresses, iteration, instance):
        """The model of `iteration` from the first peer (TCP address) that has it, or None."""
        payload = json.dumps({"iteration": iteration, "instance": instance}).encode()
        for address in addresses:
            try:
                reply = await comm.request(self.comm, address, MSG_GET_MODEL, payload, FETCH_TIMEOUT_S)
                return decode_model(reply)[1]
            except comm.CommError as exc:
                logger.debug("model %s not available from %s: %s", iteration, address, exc)
        return None

    async def allreduce(self, addresses, rank, flat, extras, tag):
        """Sums `flat` (float32) and `extras` (float64) in place over the group's servers (TCP addresses,
        same order on every rank)."""
        await comm.allreduce(self.comm, addresses, rank, flat, tag, ALLREDUCE_TIMEOUT_S)
        await comm.allreduce(self.comm, addresses, rank, extras, tag + 1, ALLREDUCE_TIMEOUT_S)

    async def close(self):
        if self._serving is not None:
            self._serving.cancel()
            try:
                await self._serving
            except asyncio.CancelledError:
                pass
        await asyncio.get_running_loop().run_in_executor(None, self.comm.stop)
