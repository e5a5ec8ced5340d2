"""Features this server does not implement yet: a configuration asking for one refuses to start."""
from mindspore_federated import errors

# YAML key -> {configured value: what it asks for}. The issue that builds a feature deletes its row here,
# in the same commit that makes the server honour it; nothing else gates these features.
NOT_BUILT = {
}

# The same settings under their names in the cluster's hyper-params (what servers share through Redis).
HYPER_PARAM_NAMES = {
}


def not_built(values):
    """The descriptions of every unimplemented feature that `values` ({YAML key: value}) asks for."""
    out = []
    for key, features in NOT_BUILT.items():
        value = values.get(key)
        if isinstance(value, bool) or isinstance(value, str):
            feature = features.get(value)
            if feature is not None:
                out.append(feature)
    return out


def check_config(cfg):
    """Raises NotBuiltError naming every feature the server's configuration asks for and this build lacks."""
    missing = not_built(cfg.as_dict())
    if missing:
        raise errors.NotBuiltError(errors.NOT_BUILT.format(features="; ".join(missing), path=cfg.path))


def check_hyper_params(hp, fl_name):
    """Raises NotBuiltError when the cluster's hyper-params (adopted from Redis) ask for such a feature."""
    missing = not_built({key: hp.get(name) for name, key in HYPER_PARAM_NAMES.items()})
    if missing:
        text = errors.NOT_BUILT_CLUSTER.format(features="; ".join(missing), fl_name=fl_name)
        raise errors.NotBuiltError(text)
