"""A device's side of pairwise-mask secure aggregation (spec §5.1), as the Java client does it:

exchangeKeys (two X25519 key pairs: c for encrypting shares, s for the pairwise masks) -> getKeys ->
shareSecrets (Shamir shares of the s private key and of the individual seed b, each peer's pair encrypted with
AES-256-CBC under PBKDF2(X25519(c_sk, c_pk_peer), empty salt), IV prepended) -> getSecrets -> [upload
w*n + Σ ±pairwise masks + individual mask over the concatenation of the weights in name order] ->
getClientList -> [with a PKI identity: pushListSign (the device's signature over the client list) ->
getListSign] -> reconstructSecrets (b shares of devices that uploaded, s shares of those that did not).
STABLE_PW_ENCRYPT stops after getKeys and adds only the pairwise masks. With a PKI identity every request
carries a timestamp and its signature (spec §5.4)."""
import hashlib
import os

import numpy as np
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mindspore_federated import armour, signing
from mindspore_federated.client.messages import cipher as wire

SEED_BYTES, IV_BYTES, SALT_BYTES = 32, 16, 32
PHASES = ("startFLJob", "exchangeKeys", "getKeys", "shareSecrets", "getSecrets", "updateModel", "getClientList",
          "reconstructSecrets")


class Dropped(Exception):
    """The device was told to drop out after `phase` (tests and the simulator's --drop-at)."""

    def __init__(self, phase):
        super().__init__(f"dropped out after {phase}")
        self.phase = phase


def _minimal(value):
    """Big-endian bytes without leading zeros (the Java client's integer encoding)."""
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def encrypt_share(key, plaintext):
    """AES-256-CBC, PKCS#7 padding, a random IV prepended (the Java client's AESEncrypt CBC mode)."""
    iv = os.urandom(IV_BYTES)
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + enc.update(data) + enc.finalize()


def decrypt_share(key, data):
    dec = Cipher(algorithms.AES(key), modes.CBC(data[:IV_BYTES])).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(dec.update(data[IV_BYTES:]) + dec.finalize()) + unpadder.finalize()


def pack_shares(s_index, s_share, b_index, b_share):
    """[len s, len b, len s-index, len b-index, s-index, b-index, s share, b share] (Java CipherClient)."""
    si, bi = _minimal(s_index), _minimal(b_index)
    return bytes([len(s_share), len(b_share), len(si), len(bi)]) + si + bi + bytes(s_share) + bytes(b_share)


def unpack_shares(data):
    """(s_index, s_share, b_index, b_share); ValueError when malformed."""
    if len(data) < 4:
        raise ValueError("share too short")
    ls, lb, lsi, lbi = data[:4]
    if len(data) < 4 + ls + lb + lsi + lbi:
        raise ValueError("share too short")
    pos = 4
    s_index = int.from_bytes(data[pos:pos + lsi], "big")
    b_index = int.from_bytes(data[pos + lsi:pos + lsi + lbi], "big")
    pos += lsi + lbi
    return s_index, bytes(data[pos:pos + ls]), b_index, bytes(data[pos + ls:pos + ls + lb])


class PairwiseSession:
    """One iteration of one device. `call(round, body)` sends a request with the device's retry rules and
    returns the SUCCEED reply; `drop_at` names the phase after which the device stops (None: never);
    `identity` (a client.identity.DeviceIdentity, for servers with client_verify.pki_verify) signs the
    requests and adds the list-signature rounds."""

    def __init__(self, fl_id, iteration, plan, call, stable=False, drop_at=None, identity=None):
        self.fl_id, self.iteration, self.call = fl_id, iteration, call
        self.identity = identity
        self.stable, self.drop_at = stable, drop_at
        self.t = plan.pw_params.t if plan.pw_params is not None else 1
        self.prime = plan.pw_params.prime if plan.pw_params is not None else b""
        self.c_sk, self.c_pk = armour.x25519_keypair()
        self.s_sk, self.s_pk = armour.x25519_keypair()
        self.seed = os.urandom(SEED_BYTES)
        self.ind_iv, self.pw_iv, self.pw_salt = os.urandom(IV_BYTES), os.urandom(IV_BYTES), os.urandom(SALT_BYTES)
        self.peers = {}        # fl_id -> PeerKeys (getKeys, self excluded)
        self.mask_peers = []   # the peers whose pairwise masks this device adds (sorted)
        self.held = {}         # sender -> (s_index, s_share, b_index, b_share) it gave this device

    def _signed(self, *parts):
        """The timestamp and signature fields of a request (none without an identity)."""
        return self.identity.round_fields(self.iteration, *parts) if self.identity is not None else {}

    def _phase_done(self, phase):
        if self.drop_at == phase:
            raise Dropped(phase)

    async def before_training(self):
        c_pk = b"" if self.stable else self.c_pk
        await self.call("exchangeKeys", wire.build_exchange_keys(
            self.fl_id, self.iteration, c_pk, self.s_pk, b"" if self.stable else self.ind_iv, self.pw_iv,
            self.pw_salt, **self._signed(c_pk, self.s_pk)))
        self._phase_done("exchangeKeys")
        reply = await self.call("getKeys", wire.build_get_keys(self.fl_id, self.iteration, **self._signed()))
        self.peers = {k.fl_id: k for k in reply.keys if k.fl_id != self.fl_id}
        self._phase_done("getKeys")
        if self.stable:
            self.mask_peers = sorted(self.peers)
            return
        await self.call("shareSecrets", wire.build_share_secrets(self.fl_id, self.iteration, self._my_shares(),
                                                                 **self._signed()))
        self._phase_done("shareSecrets")
        reply = await self.call("getSecrets", wire.build_get_secrets(self.fl_id, self.iteration, **self._signed()))
        for sender, share, _index in reply.shares:
            if sender in self.peers:
                self.held[sender] = unpack_shares(decrypt_share(self._share_key(sender), share))
        self.mask_peers = sorted(self.held)
        self._phase_done("getSecrets")

    def _share_key(self, peer):
        return armour.pbkdf2_sha256(armour.x25519_agree(self.c_sk, self.peers[peer].c_pk), b"")

    def _my_shares(self):
        order = sorted(self.peers)
        s_shares = armour.shamir_split(self.s_sk, self.t, len(order), self.prime)
        b_shares = armour.shamir_split(self.seed, self.t, len(order), self.prime)
        out = []
        for peer, (si, ss), (bi, bs) in zip(order, s_shares, b_shares):
            out.append((peer, encrypt_share(self._share_key(peer), pack_shares(si, ss, bi, bs)), 0))
        return out

    def mask_items(self):
        """[(key, iv, sign)] this device adds to its upload."""
        own = [(self.peers[p].pw_salt, self.peers[p].pw_iv) if p < self.fl_id else (self.pw_salt, self.pw_iv)
               for p in self.mask_peers]   # the salt and IV of the smaller fl_id of each pair
        pairs = [(self.peers[p].s_pk, salt) for p, (salt, _) in zip(self.mask_peers, own)]
        keys = armour.pairwise_keys(self.s_sk, pairs, threads=1)
        items = [(key, iv, 1.0 if self.fl_id > p else -1.0) for key, p, (_, iv) in zip(keys, self.mask_peers, own)]
        if not self.stable:
            items.append((self.seed, self.ind_iv, 1.0))
        return items

    def mask(self, weights):
        """weights (name -> float32 w*n): the masked upload, the mask spanning all weights in name order."""
        names = sorted(weights)
        flat = np.concatenate([np.asarray(weights[n], np.float32).ravel() for n in names])
        armour.add_masks(flat, self.mask_items())
        out, offset = {}, 0
        for name in names:
            size = np.asarray(weights[name]).size
            out[name] = flat[offset:offset + size]
            offset += size
        return out

    async def after_upload(self):
        self._phase_done("updateModel")
        if self.stable:
            return
        reply = await self.call("getClientList", wire.build_get_client_list(self.fl_id, self.iteration,
                                                                            **self._signed()))
        uploaded = set(reply.clients)
        self._phase_done("getClientList")
        if self.identity is not None:
            await self._sign_client_list(reply.clients)
        shares = []
        for owner, (si, ss, bi, bs) in sorted(self.held.items()):
            shares.append((owner, bs, bi) if owner in uploaded else (owner, ss, si))
        await self.call("reconstructSecrets", wire.build_reconstruct_secrets(self.fl_id, self.iteration, shares,
                                                                             **self._signed()))
        self._phase_done("reconstructSecrets")

    async def _sign_client_list(self, clients):
        """pushListSign (this device's signature over SHA-256 of the client list concatenated in the server's
        order, as the Java client signs it; req_signature over timestamp ‖ iteration) then getListSign (every
        device's list signature once enough are stored)."""
        list_hash = hashlib.sha256("".join(clients).encode()).digest()
        list_signature = signing.sign(self.identity.attestation_key, list_hash)
        fields = self._signed()
        await self.call("pushListSign", wire.build_push_list_sign(
            self.fl_id, self.iteration, list_signature, timestamp=fields["timestamp"],
            req_signature=fields["signature"]))
        await self.call("getListSign", wire.build_get_list_sign(self.fl_id, self.iteration, **self._signed()))
