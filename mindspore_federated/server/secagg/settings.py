"""What the encrypt type asks of the server: which cipher rounds run, their thresholds, the shared prime."""
from dataclasses import dataclass, field

from mindspore_federated.config.thresholds import cipher_thresholds

PW_ENCRYPT, STABLE_PW_ENCRYPT, SIGNDS, DP_ENCRYPT = "PW_ENCRYPT", "STABLE_PW_ENCRYPT", "SIGNDS", "DP_ENCRYPT"
KEY_ROUNDS = ("exchangeKeys", "getKeys")
PW_ROUNDS = KEY_ROUNDS + ("shareSecrets", "getSecrets", "getClientList", "reconstructSecrets", "pushListSign",
                          "getListSign")


@dataclass
class CipherSettings:
    """The cluster's privacy mode, read from its hyper-parameters."""

    mode: str = "NOT_ENCRYPT"
    thresholds: dict = field(default_factory=dict)
    t: int = 1                     # secret shares needed to reconstruct (reconstruct_secrets_threshold)
    window_ms: int = 0             # cipher_time_window
    prime: bytes = b"\0" * 33      # the cluster's prime (set at join for the pairwise modes)

    @property
    def pw(self):
        """Full pairwise masking with dropout recovery (the unmask stage runs)."""
        return self.mode == PW_ENCRYPT

    @property
    def pairwise(self):
        return self.mode in (PW_ENCRYPT, STABLE_PW_ENCRYPT)

    def serves(self, round_name):
        """True when round `round_name` is a cipher round this mode runs (every other round always runs)."""
        if round_name not in PW_ROUNDS:
            return True
        return self.mode == PW_ENCRYPT or (self.mode == STABLE_PW_ENCRYPT and round_name in KEY_ROUNDS)


def cipher_settings(hp, previous=None):
    """CipherSettings of hyper-params `hp` (keeping `previous`'s prime)."""
    mode = hp.get("encrypt_type") or "NOT_ENCRYPT"
    out = CipherSettings(mode, prime=previous.prime if previous is not None else CipherSettings().prime)
    if not out.pairwise:
        return out
    out.t = int(hp["reconstruct_secrets_threshold"])
    out.window_ms = int(hp["cipher_time_window"])
    out.thresholds = cipher_thresholds({
        "round.start_fl_job_threshold": int(hp["start_fl_job_threshold"]),
        "round.update_model_ratio": hp["update_model_ratio"],
        "encrypt.pw_encrypt.share_secrets_ratio": hp["share_secrets_ratio"],
        "encrypt.pw_encrypt.reconstruct_secrets_threshold": out.t})
    return out
