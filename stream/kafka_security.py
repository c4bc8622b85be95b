"""How Hearth's Kafka clients authenticate: one settings object turned into aiokafka kwargs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka.helpers import (  # type: ignore[import-untyped, unused-ignore]
    create_ssl_context,
)

PROTOCOLS = frozenset({"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"})
SASL_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})


@dataclass(frozen=True)
class KafkaSecurity:
    """Security settings shared by the admin client, producers and consumers.

    `ssl_cafile` is the CA bundle that signed the brokers' certificates; without it the
    system CAs are trusted. SASL protocols need a mechanism, a username and a password.
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, not {self.protocol!r}")
        if self.uses_sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ValueError(
                    f"{self.protocol} needs sasl_mechanism in {sorted(SASL_MECHANISMS)},"
                    f" not {self.sasl_mechanism!r}"
                )
            if not self.username or self.password is None:
                raise ValueError(f"{self.protocol} needs a username and a password")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        return self.protocol.endswith("SSL")

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments accepted by every aiokafka client constructor."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = self.password
        if self.uses_ssl:
            kwargs["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        return kwargs


def security_kwargs(security: KafkaSecurity | None) -> dict[str, Any]:
    """`as_kwargs()` of `security`, or plaintext when there is none."""
    return (security or KafkaSecurity()).as_kwargs()
