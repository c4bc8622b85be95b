"""The service's one settings object, read from HEARTH_* variables at the entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.kafka_security import KafkaSecurity


class KafkaSettings(BaseSettings):
    bootstrap: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    ssl_cafile: Path | None = None

    def security(self) -> KafkaSecurity:
        """The same settings as the plain aiokafka clients take them (validated there)."""
        return KafkaSecurity(
            protocol=self.security_protocol,
            sasl_mechanism=self.sasl_mechanism,
            username=self.username,
            password=self.password.get_secret_value() if self.password else None,
            ssl_cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
        )


class Settings(BaseSettings):
    """Hearth worker settings. Nested values use `__`, e.g. HEARTH_KAFKA__BOOTSTRAP."""

    model_config = SettingsConfigDict(env_prefix="HEARTH_", env_nested_delimiter="__", frozen=True)

    app_id: str = "hearth"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    topic_prefix: str = "hearth."
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    policy: Path | None = None
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    flush_interval_seconds: float = Field(default=0.2, gt=0)
    decay_clock: Literal["wall", "event"] = "wall"
    decay_tick_seconds: float = Field(default=1.0, gt=0)
    salt: int = Field(default=0, ge=0, description="seed of the counterpart/id hashes")
    state_cache_size: int = Field(default=25_000, ge=100, description="decoded states kept")
    stall_seconds: float = Field(
        default=30.0, gt=0, description="re-read lagging inputs after this long without progress"
    )
    admin_token: SecretStr | None = Field(
        default=None, description="bearer token of the admin endpoints (unset: they answer 403)"
    )
    read_token: SecretStr | None = Field(
        default=None, description="bearer token of /members and /leaderboard (unset: open)"
    )
    data_dir: Path = Path("build/worker")
