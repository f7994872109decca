"""The one settings object: environment variables override defaults; SQLite is the embedded default."""
from __future__ import annotations

from core.config import Settings


def test_sqlite_is_the_default_database(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path / 'jsjb.db'}"


def test_environment_variables_configure_postgresql(monkeypatch):
    monkeypatch.setenv("JSJB_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("JSJB_API_PORT", "9000")
    settings = Settings()
    assert settings.sqlalchemy_url.startswith("postgresql+psycopg://")
    assert settings.api_port == 9000
