"""Request bodies the SDK never sends (fields left out, wrong identifiers), for validation and fuzz tests."""
import flatbuffers
import numpy as np

from mindspore_federated.schema.fbs import FeatureMap, RequestFLJob, RequestUpdateModel

# ---- request bodies the SDK never sends: fields left out ------------------------------------------------

def _string(b, value):
    return None if value is None else b.CreateString(value)


def fl_job_body(fl_name="fz", fl_id="fzA", data_size=0, timestamp="1700000000000", iteration=1, ident=False,
                types=()):
    """A RequestFLJob; any string field given as None is left out."""
    b = flatbuffers.Builder(256)
    name, fid, ts = _string(b, fl_name), _string(b, fl_id), _string(b, timestamp)
    vec = None
    if types:
        RequestFLJob.StartDownloadCompressTypesVector(b, len(types))
        for t in reversed(types):
            b.PrependInt8(t)
        vec = b.EndVector()
    RequestFLJob.Start(b)
    for off, add in ((name, RequestFLJob.AddFlName), (fid, RequestFLJob.AddFlId),
                     (ts, RequestFLJob.AddTimestamp), (vec, RequestFLJob.AddDownloadCompressTypes)):
        if off is not None:
            add(b, off)
    RequestFLJob.AddIteration(b, iteration)
    RequestFLJob.AddDataSize(b, data_size)
    b.Finish(RequestFLJob.End(b), b"FLJ0" if ident else None)
    return bytes(b.Output())


def update_body(fl_id="fzUnstarted", features=None, loss=0.5, accuracy=0.5, timestamp="1700000000000",
                iteration=1, drop_name=False, drop_data=False, ident=False, drop_map=False):
    """A RequestUpdateModel; fl_id/timestamp None are left out, and the first feature entry may lack its name
    (`drop_name`) or the last one its data (`drop_data`); `drop_map` leaves the feature_map field out."""
    features = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)} if features is None else features
    b = flatbuffers.Builder(1024)
    tables = []
    for i, (name, arr) in enumerate(features.items()):
        fname = b.CreateString(name)
        data = b.CreateNumpyVector(np.asarray(arr, np.float32))
        FeatureMap.Start(b)
        if not (drop_name and i == 0):
            FeatureMap.AddWeightFullname(b, fname)
        if not (drop_data and i == len(features) - 1):
            FeatureMap.AddData(b, data)
        tables.append(FeatureMap.End(b))
    RequestUpdateModel.StartFeatureMapVector(b, len(tables))
    for off in reversed(tables):
        b.PrependUOffsetTRelative(off)
    fm = b.EndVector()
    fid, ts, name = _string(b, fl_id), _string(b, timestamp), b.CreateString("fz")
    RequestUpdateModel.Start(b)
    RequestUpdateModel.AddFlName(b, name)
    if fid is not None:
        RequestUpdateModel.AddFlId(b, fid)
    if ts is not None:
        RequestUpdateModel.AddTimestamp(b, ts)
    RequestUpdateModel.AddIteration(b, iteration)
    if not drop_map:
        RequestUpdateModel.AddFeatureMap(b, fm)
    RequestUpdateModel.AddUploadLoss(b, loss)
    RequestUpdateModel.AddUploadAccuracy(b, accuracy)
    b.Finish(RequestUpdateModel.End(b), b"FLJ0" if ident else None)
    return bytes(b.Output())
