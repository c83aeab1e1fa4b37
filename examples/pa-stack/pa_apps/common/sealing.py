"""Fernet-like authenticated encryption built only on hmac + hashlib.

The ``cryptography`` package is not a dependency of the stack, so credentials
are sealed with the Fernet token layout but an HMAC-SHA256 counter-mode
keystream instead of AES-CBC::

    token = urlsafe_b64( 0x80 | timestamp(8) | iv(16) | ciphertext | hmac(32) )

The 32-byte key is ``sha256(secret)`` (the "Fernet key" is its urlsafe base64
form, so any string works as a secret); its first half signs, its second half
encrypts.  A token sealed under another secret fails HMAC verification.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
import time

VERSION = b"\x80"
_HEADER = 1 + 8 + 16
_MAC = 32


class InvalidToken(ValueError):
    """Wrong key or tampered/garbled token."""


def derive_key(secret: str) -> bytes:
    """The urlsafe-base64 "Fernet key" for an arbitrary secret string."""
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode("utf-8")).digest())


class Sealer:
    def __init__(self, secret: str):
        if not secret:
            raise ValueError("an empty secret cannot seal credentials")
        raw = base64.urlsafe_b64decode(derive_key(secret))
        self._sign_key, self._enc_key = raw[:16], raw[16:]

    def _keystream(self, iv: bytes, length: int) -> bytes:
        blocks = []
        for counter in range((length + 31) // 32):
            blocks.append(hmac.new(self._enc_key, iv + struct.pack(">Q", counter), hashlib.sha256).digest())
        return b"".join(blocks)[:length]

    def encrypt(self, plaintext: bytes, iv: bytes | None = None, timestamp: int | None = None) -> str:
        iv = iv or os.urandom(16)
        header = VERSION + struct.pack(">Q", int(time.time() if timestamp is None else timestamp)) + iv
        cipher = bytes(a ^ b for a, b in zip(plaintext, self._keystream(iv, len(plaintext)), strict=True))
        mac = hmac.new(self._sign_key, header + cipher, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(header + cipher + mac).decode("ascii")

    def decrypt(self, token: str) -> bytes:
        try:
            data = base64.urlsafe_b64decode(token.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise InvalidToken("token is not valid base64") from exc
        if len(data) < _HEADER + _MAC or data[:1] != VERSION:
            raise InvalidToken("token is malformed")
        body, mac = data[:-_MAC], data[-_MAC:]
        expected = hmac.new(self._sign_key, body, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            raise InvalidToken("signature mismatch (wrong PA_SECRET_KEY?)")
        iv, cipher = body[9:_HEADER], body[_HEADER:]
        return bytes(a ^ b for a, b in zip(cipher, self._keystream(iv, len(cipher)), strict=True))

    # JSON convenience for credential dicts
    def seal_json(self, value, **kwargs) -> str:
        return self.encrypt(json.dumps(value, sort_keys=True).encode("utf-8"), **kwargs)

    def open_json(self, token: str):
        return json.loads(self.decrypt(token))
