"""Configuration: one pydantic-settings model read from ``CVCYCLE_*`` environment variables.

Defaults give the embedded, zero-config setup: everything lives under ``CVCYCLE_HOME``
(``./.cvcycle`` by default, like ``mlruns`` for MLflow): a SQLite database, a blob directory and an
MLflow SQLite store. Each can be pointed elsewhere by URL.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where cvcycle keeps its state. Every field is ``CVCYCLE_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="CVCYCLE_", extra="ignore")

    home: Path = Field(default=Path(".cvcycle"), description="Directory for the embedded default state.")
    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database; default sqlite:///<home>/cvcycle.db. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/db",
    )
    store_url: str | None = Field(
        default=None,
        description="fsspec URL of the blob store; default file://<home>/store. S3: s3://bucket/prefix",
    )
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default sqlite:///<home>/mlflow.db"
    )
    cache_dir: Path | None = Field(
        default=None, description="Local read cache for remote blob stores; default <home>/cache"
    )
    sqlite_busy_timeout_ms: int = Field(
        default=30_000, ge=0, description="How long a SQLite writer waits for another's lock before failing."
    )
    model_repository: Path | None = Field(
        default=None,
        description="The Triton-layout model repository `cvcycle demo` publishes to and `cvcycle up` serves; "
        "default <home>/model-repository",
    )
    spot_check_share: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Share of finished annotation tasks sent to review."
    )
    spot_check_seed: int = Field(default=0, description="Seed of the spot-check draw: same seed, same tasks.")
    max_upload_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1, description="Largest upload the API accepts (e.g. an events file)."
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1,
        description="Largest request body the API accepts on any route but the events upload (413 above it).",
    )
    allowed_hosts: str = Field(
        default="127.0.0.1,localhost,[::1]",
        description="Comma-separated Host names the API answers (any port unless NAME:PORT; `*` any); "
        "others get 400. A reverse proxy's public name goes here.",
    )
    mlflow_ui_url: str | None = Field(
        default=None, description="Where the MLflow UI runs (e.g. http://127.0.0.1:5000): runs link there."
    )

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'cvcycle.db'}"

    @property
    def blob_store_url(self) -> str:
        return self.store_url or (self.home / "store").as_uri()

    @property
    def tracking_url(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def read_cache_dir(self) -> Path:
        return self.cache_dir or self.home / "cache"

    @property
    def manifests_dir(self) -> Path:
        return self.home / "manifests"

    @property
    def model_repository_dir(self) -> Path:
        return self.model_repository or self.home / "model-repository"


def redact_url(url: str) -> str:
    """``url`` as it may be shown (CLI output, API responses, logs): a password in it becomes ``***``.

    Database, tracking and store URLs may carry credentials (``postgresql+psycopg://user:secret@db/x``,
    ``http://user:secret@mlflow``); whoever reads a run or a home's description sees where things
    live, never the secret.
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
