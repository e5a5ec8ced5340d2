"""Round thresholds derived from the config: U = ceil(T × update_model_ratio) and the cipher rounds' chain.

Computed on the exact decimal values of the ratios (25 × 0.28 is 7, not the 8 binary floating point gives).
Every place that needs one of these numbers (config, server engine, scheduler) calls these functions.
"""
import math
from decimal import Decimal

__all__ = ["ceil_ratio", "update_model_threshold", "cipher_thresholds"]


def ceil_ratio(count, ratio):
    """ceil(count × ratio) on the exact decimal values (0.7 × 10 is 7, not 8 as in binary floating point)."""
    return math.ceil(Decimal(int(count)) * Decimal(repr(float(ratio))))


def update_model_threshold(start_fl_job_threshold, update_model_ratio):
    """U: updateModel requests that complete an iteration, ceil(T × update_model_ratio)."""
    return ceil_ratio(start_fl_job_threshold, update_model_ratio)


def cipher_thresholds(values):
    """Counter thresholds of the cipher rounds (spec §3.6) from flat config values."""
    update = update_model_threshold(values["round.start_fl_job_threshold"],
                                    values["round.update_model_ratio"])
    ratio = values["encrypt.pw_encrypt.share_secrets_ratio"]
    minimum = values["encrypt.pw_encrypt.reconstruct_secrets_threshold"] + 1
    exchange = max(ceil_ratio(values["round.start_fl_job_threshold"], ratio), update)
    get_keys = max(ceil_ratio(exchange, ratio), update)
    share = max(ceil_ratio(get_keys, ratio), update)
    client_list = max(ceil_ratio(update, ratio), minimum)
    push_sign = max(ceil_ratio(client_list, ratio), minimum)
    return {"exchangeKeys": exchange, "getKeys": get_keys, "shareSecrets": share,
            "getSecrets": max(ceil_ratio(share, ratio), update), "getClientList": client_list,
            "reconstructSecrets": minimum, "pushListSign": push_sign,
            "getListSign": max(ceil_ratio(push_sign, ratio), minimum)}
