"""Settings, read from the environment with the prefix ``CRM_`` (or a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("crm-data"), description="SQLite store and DuckDB files")
    database_url: str | None = Field(
        default=None,
        description="postgresql://user:password@host:5432/dbname; unset = SQLite in data_dir",
    )
    pg_pool_size: int = Field(default=10, ge=1, le=200)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    write_rate_per_second: float = Field(
        default=50.0,
        ge=0,
        le=1_000_000,
        description="commands a second each API token may send after its burst (0: no limit)",
    )
    write_burst: int = Field(
        default=500, ge=1, le=1_000_000, description="commands an API token may send at once"
    )
    denial_record_rate_per_second: float = Field(
        default=1.0,
        ge=0,
        le=1_000_000,
        description="refusals (403) recorded a second per API token after its burst (0: all)",
    )
    denial_record_burst: int = Field(
        default=20, ge=1, le=1_000_000, description="refusals of a token recorded at once"
    )
    group_commit: bool = Field(
        default=True,
        description="commit concurrent commands together in one transaction (off: one each)",
    )

    signing_key_file: Path | None = Field(
        default=None,
        description="Ed25519 private key (PEM) that signs `crm verify --checkpoint` files",
    )
    verify_key_file: Path | None = Field(
        default=None,
        description="Ed25519 public key (PEM) that `crm verify --against` checks signatures "
        "with; default: the signing key's",
    )

    projection_batch_size: int = Field(default=10_000, ge=1, le=1_000_000)
    projection_poll_seconds: float = Field(
        default=0.5, gt=0, le=60, description="how often to look for events written elsewhere"
    )

    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port…]"
    )
    kafka_topic: str = Field(default="crm.events", min_length=1, max_length=249)
    kafka_partitions: int = Field(
        default=3, ge=1, le=1000, description="partitions of the topic when `crm relay` creates it"
    )
    relay_batch_size: int = Field(default=500, ge=1, le=5_000)
    relay_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="port on CRM_HOST where crm relay serves Prometheus metrics (unset: none)",
    )

    @property
    def read_dir(self) -> Path:
        """The DuckDB read models, one file per read model."""
        return self.data_dir / "read"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "events.sqlite"

    @property
    def store_description(self) -> str:
        if self.database_url:
            return "PostgreSQL " + self.database_url.split("@")[-1]
        return f"SQLite {self.sqlite_path}"
