"""Spec rules applied after the per-key checks: fallbacks, forced values and the cipher-init check."""
from mindspore_federated import errors
from mindspore_federated.config.schema import (
    DEFAULT_PARTICIPATION_TIME_LEVEL,
    MAX_PARTICIPATION_MINUTES,
    NO_COMPRESS,
    NO_UPLOAD_COMPRESS_TYPES,
    PW_ENCRYPT,
)
from mindspore_federated.config.thresholds import cipher_thresholds

__all__ = ["parse_participation_time_level", "apply_rules"]


def parse_participation_time_level(text):
    """'a,b' -> (a, b) when 0 < a < b <= 2880, else None."""
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) != 2 or not all(part.isascii() and part.isdigit() for part in parts):
        return None
    low, high = int(parts[0]), int(parts[1])
    return (low, high) if 0 < low < high <= MAX_PARTICIPATION_MINUTES else None


def _apply_participation_fallback(values, problems):
    key = "summary.participation_time_level"
    if parse_participation_time_level(values[key]) is None:
        problems.warn(f"Invalid {key} '{values[key]}' (expected 'a,b' minutes with 0 < a < b <= "
                      f"{MAX_PARTICIPATION_MINUTES}), using '{DEFAULT_PARTICIPATION_TIME_LEVEL}'")
        values[key] = DEFAULT_PARTICIPATION_TIME_LEVEL


def _apply_upload_compress_rule(values, problems):
    encrypt_type = values["encrypt.encrypt_type"]
    compress_type = values["compression.upload_compress_type"]
    if compress_type != NO_COMPRESS and encrypt_type in NO_UPLOAD_COMPRESS_TYPES:
        problems.warn(f"The encrypt_type '{encrypt_type}' and upload_compress_type '{compress_type}' "
                      f"conflict: in '{encrypt_type}' mode 'compression.upload_compress_type' is forced to "
                      f"'{NO_COMPRESS}'")
        values["compression.upload_compress_type"] = NO_COMPRESS


_CIPHER_KEYS = ("round.start_fl_job_threshold", "round.update_model_ratio", "encrypt.encrypt_type",
                "encrypt.pw_encrypt.share_secrets_ratio", "encrypt.pw_encrypt.reconstruct_secrets_threshold")


def _check_cipher_init(values, problems):
    """PW_ENCRYPT needs shareSecrets threshold >= reconstruct_secrets_threshold + 1, else cipher init fail."""
    if values["encrypt.encrypt_type"] != PW_ENCRYPT or problems.bad_keys.intersection(_CIPHER_KEYS):
        return
    thresholds = cipher_thresholds(values)
    share, minimum = thresholds["shareSecrets"], thresholds["reconstructSecrets"]
    if share < minimum:
        problems.add_other(
            errors.CIPHER_INIT + " The shareSecrets threshold {share} is smaller than "
            "reconstruct_secrets_threshold + 1 = {minimum} (start_fl_job_threshold {threshold}, "
            "share_secrets_ratio {ratio}), yaml config file: {path}", share=share, minimum=minimum,
            threshold=values["round.start_fl_job_threshold"],
            ratio=values["encrypt.pw_encrypt.share_secrets_ratio"])


REDIS_TLS_KEYS = ("distributed_cache.cacert_filename", "distributed_cache.capath",
                  "distributed_cache.cert_filename", "distributed_cache.private_key_filename",
                  "distributed_cache.server_name")


def _warn_unused_redis_tls(values, problems):
    """Redis TLS settings take effect with enable_ssl only (as in the reference): say so, never silently."""
    given = [key for key in REDIS_TLS_KEYS if values.get(key)]
    if given and not values.get("enable_ssl"):
        problems.warn(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} set but enable_ssl is false: "
                      "Redis is reached without TLS")


def apply_rules(values, role, problems):
    _warn_unused_redis_tls(values, problems)
    if role == "scheduler":
        return
    _apply_participation_fallback(values, problems)
    _apply_upload_compress_rule(values, problems)
    _check_cipher_init(values, problems)
