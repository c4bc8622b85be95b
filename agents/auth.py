"""Bearer-token checks for the HTTP API (constant-time comparison)."""

from __future__ import annotations

import hmac

from pydantic import SecretStr


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def allowed(required: SecretStr | None, header: str | None) -> bool:
    """True when no token is required, or the header carries the required one."""
    if required is None:
        return True
    token = bearer_token(header)
    if token is None:
        return False
    return hmac.compare_digest(token.encode(), required.get_secret_value().encode())
