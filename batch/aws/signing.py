"""SigV4 for the per-session client: botocore's signature, byte for byte, done once where it can.

botocore signs each request with a new :class:`~botocore.auth.SigV4Auth`, which derives
the day's signing key (four HMAC-SHA256) for every request, selects and copies the headers
to sign twice (for the canonical request, then for the ``Authorization`` header), and
hashes the body through ``request.body``, which prepares the whole request (a copy of its
headers) only to read its bytes. :class:`LeanSigV4Auth` keeps the signing key per secret,
day, region and service, selects the headers once per signature and hashes the request's
bytes as they are; everything else (the canonical request, the string to sign, the
headers it sets) is botocore's own code. Measured in docs/BENCHMARKS.md ("CPU per session
(issue 24)").

:func:`use_lean_signer` chooses it for one client through botocore's public
``choose-signer`` event, registered last: it answers only when no other handler chose and
botocore would sign with plain ``v4``; any other choice (unsigned, ``v4a``, ``s3v4``, a
configured preference) stays botocore's.
"""

from __future__ import annotations

from hashlib import sha256
from typing import Any

import botocore.auth
from botocore.auth import EMPTY_SHA256_HASH, SigV4Auth
from botocore.awsrequest import AWSRequest

__all__ = ["LEAN_V4", "LeanSigV4Auth", "use_lean_signer"]

LEAN_V4 = "liveness-audit-v4"  # the name botocore knows the signer by
_KEYS_KEPT = 16  # signing keys kept (a few regions, two days at midnight)


class LeanSigV4Auth(SigV4Auth):  # type: ignore[misc]  # botocore is untyped
    """:class:`~botocore.auth.SigV4Auth` with the signing key kept and the headers to sign
    selected once per signature (one instance signs one request)."""

    _keys: dict[tuple[str, str, str, str], bytes] = {}  # noqa: RUF012  # shared by every instance: the point

    def add_auth(self, request: AWSRequest) -> None:
        self._selected: tuple[AWSRequest, Any] | None = None
        super().add_auth(request)

    def headers_to_sign(self, request: AWSRequest) -> Any:
        """botocore's selection, made once per signature: the headers do not change
        between the canonical request and the ``Authorization`` header."""
        selected = getattr(self, "_selected", None)
        if selected is not None and selected[0] is request:
            return selected[1]
        headers = super().headers_to_sign(request)
        self._selected = (request, headers)
        return headers

    def payload(self, request: AWSRequest) -> str:
        """The body's SHA-256 from the request's bytes (botocore prepares the whole request
        to read them); any other body (a stream, a form) is botocore's."""
        data = request.data
        if not isinstance(data, bytes) or not self._should_sha256_sign_payload(request):
            return str(super().payload(request))
        return sha256(data).hexdigest() if data else EMPTY_SHA256_HASH

    def signature(self, string_to_sign: str, request: AWSRequest) -> str:
        """botocore's signature, with the day's signing key derived once."""
        day = request.context["timestamp"][0:8]
        secret = self.credentials.secret_key
        name = (secret, day, self._region_name, self._service_name)
        key = self._keys.get(name)
        if key is None:
            key = self._sign(f"AWS4{secret}".encode(), day)
            for part in (self._region_name, self._service_name, "aws4_request"):
                key = self._sign(key, part)
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            self._keys[name] = key
        return str(self._sign(key, string_to_sign, hex=True))


botocore.auth.AUTH_TYPE_MAPS[LEAN_V4] = LeanSigV4Auth


def _choose(signature_version: object, **_: object) -> str | None:
    """``choose-signer``: the lean signer where botocore would use plain ``v4``."""
    return LEAN_V4 if signature_version == "v4" else None


def use_lean_signer(client: Any) -> None:
    """Sign ``client``'s requests with :class:`LeanSigV4Auth` (see the module)."""
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_last(f"choose-signer.{service}", _choose)
