"""Device request builders: one function per round, each returning the flatbuffers body to POST."""
import numpy as np

from mindspore_federated.client.messages.codec import (
    CompressType,
    compress_vector,
    enum_vector,
    feature_vector,
    finish,
    int_vector,
    new_builder,
    opt_string,
    payload_size,
    string_vector,
)
from mindspore_federated.clock import now_ms_text
from mindspore_federated.schema.fbs import (
    RequestFLJob,
    RequestGetModel,
    RequestPullWeight,
    RequestPushMetrics,
    RequestPushWeight,
    RequestUpdateModel,
)

__all__ = ["build_start_fl_job", "build_update_model", "build_get_model", "build_pull_weight",
           "build_push_weight", "build_push_metrics"]


def build_start_fl_job(fl_name, fl_id, iteration=0, data_size=1, *, timestamp=None, eval_data_size=0,
                       download_compress_types=(), sign_data=None, key_attestation=None, equip_cert=None,
                       equip_ca_cert=None, root_cert=None, file_identifier=False):
    """RequestFLJob body; the PKI fields are written only when given."""
    b = new_builder()
    offs = {
        "name": b.CreateString(fl_name), "id": b.CreateString(fl_id),
        "ts": b.CreateString(timestamp if timestamp is not None else now_ms_text()),
        "sign": None if sign_data is None else b.CreateByteVector(bytes(sign_data)),
        "attest": opt_string(b, key_attestation), "cert": opt_string(b, equip_cert),
        "ca": opt_string(b, equip_ca_cert), "root": opt_string(b, root_cert),
        "types": enum_vector(b, download_compress_types) if download_compress_types else None,
    }
    RequestFLJob.Start(b)
    RequestFLJob.AddFlName(b, offs["name"])
    RequestFLJob.AddFlId(b, offs["id"])
    RequestFLJob.AddIteration(b, int(iteration))
    RequestFLJob.AddDataSize(b, int(data_size))
    RequestFLJob.AddTimestamp(b, offs["ts"])
    _add_fl_job_optionals(b, offs)
    RequestFLJob.AddEvalDataSize(b, int(eval_data_size))
    return finish(b, RequestFLJob.End(b), file_identifier)


def _add_fl_job_optionals(b, offs):
    adders = [("sign", RequestFLJob.AddSignData), ("attest", RequestFLJob.AddKeyAttestation),
              ("cert", RequestFLJob.AddEquipCert), ("ca", RequestFLJob.AddEquipCaCert),
              ("root", RequestFLJob.AddRootCert), ("types", RequestFLJob.AddDownloadCompressTypes)]
    for key, add in adders:
        if offs[key] is not None:
            add(b, offs[key])


def build_update_model(fl_name, fl_id, iteration, features, *, timestamp=None, upload_loss=0.0,
                       upload_accuracy=0.0, signature=None, sign=0, index_array=None,
                       compressed_features=None, upload_compress_type=CompressType.NO_COMPRESS,
                       upload_sparse_rate=0.0, name_vec=None, file_identifier=False):
    """RequestUpdateModel body; `features` maps name -> float32 array, uploaded exactly as given."""
    compressed_features = compressed_features or {}
    size = payload_size(features) + sum(np.asarray(q.data).size + len(n)
                                         for n, q in compressed_features.items())
    b = new_builder(size, len(features) + len(compressed_features))
    offs = {
        "fm": feature_vector(b, features),
        "cfm": compress_vector(b, compressed_features) if compressed_features else None,
        "names": string_vector(b, name_vec) if name_vec is not None else None,
        "index": None if index_array is None else int_vector(b, index_array),
        "sig": None if signature is None else b.CreateByteVector(bytes(signature)),
        "name": b.CreateString(fl_name), "id": b.CreateString(fl_id),
        "ts": b.CreateString(timestamp if timestamp is not None else now_ms_text()),
    }
    RequestUpdateModel.Start(b)
    RequestUpdateModel.AddFlName(b, offs["name"])
    RequestUpdateModel.AddFlId(b, offs["id"])
    RequestUpdateModel.AddIteration(b, int(iteration))
    RequestUpdateModel.AddFeatureMap(b, offs["fm"])
    RequestUpdateModel.AddTimestamp(b, offs["ts"])
    RequestUpdateModel.AddUploadLoss(b, float(upload_loss))
    RequestUpdateModel.AddSign(b, int(sign))
    RequestUpdateModel.AddUploadCompressType(b, int(upload_compress_type))
    RequestUpdateModel.AddUploadSparseRate(b, float(upload_sparse_rate))
    RequestUpdateModel.AddUploadAccuracy(b, float(upload_accuracy))
    _add_update_optionals(b, offs)
    return finish(b, RequestUpdateModel.End(b), file_identifier)


def _add_update_optionals(b, offs):
    adders = [("cfm", RequestUpdateModel.AddCompressFeatureMap), ("names", RequestUpdateModel.AddNameVec),
              ("index", RequestUpdateModel.AddIndexArray), ("sig", RequestUpdateModel.AddSignature)]
    for key, add in adders:
        if offs[key] is not None:
            add(b, offs[key])


def build_get_model(fl_name, iteration, *, timestamp=None, download_compress_types=(), file_identifier=False):
    """RequestGetModel body."""
    b = new_builder()
    types = enum_vector(b, download_compress_types) if download_compress_types else None
    name = b.CreateString(fl_name)
    ts = b.CreateString(timestamp if timestamp is not None else now_ms_text())
    RequestGetModel.Start(b)
    RequestGetModel.AddFlName(b, name)
    RequestGetModel.AddIteration(b, int(iteration))
    RequestGetModel.AddTimestamp(b, ts)
    if types is not None:
        RequestGetModel.AddDownloadCompressTypes(b, types)
    return finish(b, RequestGetModel.End(b), file_identifier)


def build_pull_weight(iteration, weight_names, *, file_identifier=False):
    """RequestPullWeight body."""
    b = new_builder(entries=len(weight_names))
    names = string_vector(b, list(weight_names))
    RequestPullWeight.Start(b)
    RequestPullWeight.AddIteration(b, int(iteration))
    RequestPullWeight.AddWeightNames(b, names)
    return finish(b, RequestPullWeight.End(b), file_identifier)


def build_push_weight(iteration, features, *, file_identifier=False):
    """RequestPushWeight body; `features` maps name -> float32 array."""
    b = new_builder(payload_size(features), len(features))
    fm = feature_vector(b, features)
    RequestPushWeight.Start(b)
    RequestPushWeight.AddIteration(b, int(iteration))
    RequestPushWeight.AddFeatureMap(b, fm)
    return finish(b, RequestPushWeight.End(b), file_identifier)


def build_push_metrics(loss, accuracy, *, file_identifier=False):
    """RequestPushMetrics body."""
    b = new_builder()
    RequestPushMetrics.Start(b)
    RequestPushMetrics.AddLoss(b, float(loss))
    RequestPushMetrics.AddAccuracy(b, float(accuracy))
    return finish(b, RequestPushMetrics.End(b), file_identifier)
