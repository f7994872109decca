"""One typed settings object for the services process (environment variables prefixed ``JSJB_``)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, computed_field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything configurable about the services process.

    Defaults give the embedded configuration (SQLite files under ``var/``); production sets
    ``JSJB_DATABASE_URL=postgresql+psycopg://...`` and the Rasa side uses Redis for its lock store.
    """

    model_config = SettingsConfigDict(env_prefix="JSJB_", env_file=".env", extra="ignore")

    environment: str = Field("development", description="development | test | production")
    data_dir: Path = Field(PROJECT_ROOT / "var", description="Runtime data: SQLite files, indexes, logs")
    cache_dir: Path = Field(Path.home() / ".cache" / "jiesu-assistant", description="Built environments and models")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir")
    encoder_dir: Path | None = Field(None, description="Converted multilingual-e5-small folder")
    classifier_dir: Path | None = Field(None, description="Trained classifier folder")
    kb_index_dir: Path | None = Field(None, description="Persisted knowledge-base index folder")
    kb_query_encoder: str = Field(
        "onnx-int8", description="How the knowledge base embeds questions: onnx-int8 (e5-small's layers in ONNX "
        "Runtime, int8, exported at set-up) or full (e5-small in PyTorch, float32)")
    onnx_query_dir: Path | None = Field(None, description="Folder of the int8 ONNX question encoder")
    rasa_url: str = Field("http://127.0.0.1:5005", description="Rasa server base URL")
    rasa_public_url: str = Field(
        "", description="Rasa URL the chat page's browser connects to (socket.io); empty means rasa_url"
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    log_level: str = "INFO"
    log_json: bool = True
    torch_threads: int = Field(2, description="CPU threads for model inference")
    warmup_models: bool = Field(
        False, description="Load the database, classifier, knowledge base and encoder in the background at start-up "
        "(make run sets it), so the first citizens do not wait for them")
    hotline_name: str = "12345市民服务热线"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'jsjb.db'}"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def resolved_encoder_dir(self) -> Path:
        return self.encoder_dir or self.models_dir / "encoder"

    @property
    def resolved_classifier_dir(self) -> Path:
        return self.classifier_dir or self.models_dir / "classifier"

    @property
    def resolved_onnx_query_dir(self) -> Path:
        return self.onnx_query_dir or self.models_dir / "onnx-query"

    @property
    def resolved_kb_index_dir(self) -> Path:
        return self.kb_index_dir or self.data_dir / "kb_index"


@lru_cache
def get_settings() -> Settings:
    return Settings()
