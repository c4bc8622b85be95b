"""Bearer-token checks for the HTTP API (constant-time comparison) and who may call what."""

from __future__ import annotations

import hmac
from enum import Enum

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
    return hmac.compare_digest(token.encode(), required.get_secret_value().strip().encode())


class Access(Enum):
    """What an endpoint requires: nothing, the read token (when set), or the admin token."""

    OPEN = "open"
    READ = "read"
    ADMIN = "admin"


def configured(secret: SecretStr | None) -> SecretStr | None:
    """A token counts as set only when it is not blank."""
    return secret if secret is not None and secret.get_secret_value().strip() else None


def check_access(
    access: Access, header: str | None, admin: SecretStr | None, read: SecretStr | None
) -> tuple[int, str] | None:
    """None when the request may proceed, else (status, message) to answer with."""
    admin, read = configured(admin), configured(read)
    if access is Access.OPEN:
        return None
    if access is Access.ADMIN and admin is None:
        return 403, "admin endpoints are disabled: set HEARTH_ADMIN_TOKEN on the worker"
    if access is Access.READ and read is None:
        return None
    if admin is not None and allowed(admin, header):
        return None
    if access is Access.READ and allowed(read, header):
        return None
    if bearer_token(header) is None:
        return 401, "missing bearer token (Authorization: Bearer <token>)"
    return 401, "wrong bearer token"
