"""Credentials: one secret for the service, bearer tokens for API clients and Argo, and a
token per canary derived from the secret for Flagger, which sends no headers but puts the
webhook's ``metadata`` in its payload. Compared in constant time; never logged."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from rolloutlab.errors import SpecError

#: The environment variable the secret is read from when no file is given.
TOKEN_ENV = "ROLLOUTLAB_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16


class Auth:
    """Checks credentials against ``secret`` (kept private: its repr shows no part of it)."""

    def __init__(self, secret: str) -> None:
        secret = secret.strip()
        if len(secret) < MIN_TOKEN_CHARS:
            raise SpecError(
                f"the service token has {len(secret)} characters; use at least "
                f"{MIN_TOKEN_CHARS}, e.g. `openssl rand -hex 32 > token`."
            )
        self._secret = secret.encode()

    def __repr__(self) -> str:
        return "<Auth (token set)>"

    @classmethod
    def load(cls, path: str | Path | None = None) -> Auth:
        """The secret from the file ``path``, else ``$ROLLOUTLAB_SERVE_TOKEN``."""
        if path is not None:
            try:
                return cls(Path(path).read_text())
            except OSError as exc:
                raise SpecError(f"--token-file {path}: {exc.strerror}.") from None
        secret = os.environ.get(TOKEN_ENV)
        if not secret:
            raise SpecError(
                f"no token: give --token-file FILE or set {TOKEN_ENV} (every endpoint but "
                "/healthz needs it)."
            )
        return cls(secret)

    def canary_token(self, namespace: str, name: str) -> str:
        """The token Flagger sends for ``namespace/name`` in the webhook's ``metadata``:
        valid for that canary only, so a Canary manifest that shows it exposes no other."""
        message = f"flagger:{namespace}/{name}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def bearer_ok(self, header: str | None) -> bool:
        """``Authorization: Bearer <secret>``."""
        scheme, _, token = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self._secret
        )

    def canary_ok(self, namespace: str, name: str, token: str | None) -> bool:
        """The canary's own token (from the webhook's ``metadata``)."""
        expected = self.canary_token(namespace, name).encode()
        return token is not None and hmac.compare_digest(token.encode(), expected)
