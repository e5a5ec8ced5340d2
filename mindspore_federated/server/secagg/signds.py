"""SignDS uploads (spec §5.3): a device sends a sign and the indices its update moved most; the server rebuilds
each uploaded weight from the newest stored model, adding sign·sign_global_lr at those indices (one running
index over the uploaded weights in request order), and the result, times data_size, enters FedAvg."""
import numpy as np

from mindspore_federated.schema.fbs import RequestUpdateModel

MAX_INDICES = 100


def _hits(index, total):
    """The indices the reference's sequential walk applies: the increasing prefix of in-range values."""
    out, last = [], -1
    for value in index:
        value = int(value)
        if value <= last or value >= total:
            break
        out.append(value)
        last = value
    return out


def rebuild(ctx, body, spans, sign):
    """(local_error, missing name, arrays) like rounds._check_features: 1 the index list or a name is bad, 3 no
    weights, 2 an aggregated weight is missing; arrays are new float32 buffers, not yet times data_size."""
    req = RequestUpdateModel.RequestUpdateModel.GetRootAs(body, 0)
    index = () if req.IndexArrayIsNone() else req.IndexArrayAsNumpy()
    model = ctx.store.newest()
    names = [span[0] for span in spans]
    if not 1 <= len(index) <= MAX_INDICES or model is None or len(set(names)) != len(names) or \
            any(name not in model.weights for name in names):
        return 1, None, None
    if not names:
        return 3, None, None
    missing = min((name for name in ctx.spec.aggregated if name not in names), default=None)
    if missing is not None:
        return 2, missing, None
    total = sum(np.asarray(model.weights[name]).size for name in names)
    step = np.float32(sign * float(ctx.hp.get("sign_global_lr", 0.1)))
    hits = np.asarray(_hits(index, total), np.int64)
    arrays, offset = {}, 0
    for name in names:
        arr = np.array(model.weights[name], np.float32).ravel()
        local = hits[(hits >= offset) & (hits < offset + arr.size)] - offset
        arr[local] += step
        arrays[name] = arr
        offset += arr.size
    return 0, None, arrays


def weight(arrays, data_size):
    """Multiplies the rebuilt weights by the device's data_size in place (the FedAvg contract)."""
    scale = np.float32(data_size)
    for arr in arrays.values():
        arr *= scale
