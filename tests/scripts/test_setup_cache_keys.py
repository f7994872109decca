"""The set-up's cache keys depend on the content of the files that produce a product, never on where the checkout
lives: a second clone (CI's, a colleague's) reuses the environments and models the first one built."""
from __future__ import annotations

from pathlib import Path

from scripts import setup


def _checkout(root: Path, domain_text: str = "intents: [greet]\n") -> Path:
    (root / "bot" / "data").mkdir(parents=True)
    (root / "bot" / "domain.yml").write_text(domain_text, encoding="utf-8")
    (root / "bot" / "data" / "rules.yml").write_text("rules: []\n", encoding="utf-8")
    (root / "bot" / "data" / "__pycache__").mkdir()
    (root / "bot" / "data" / "__pycache__" / "x.cpython-311.pyc").write_bytes(str(root).encode())
    return root


def test_cache_keys_are_the_same_for_two_checkouts_and_change_with_the_content(tmp_path, monkeypatch):
    paths = ("bot/domain.yml", "bot/data", "bot/domain")  # bot/domain does not exist: it still counts, relatively
    keys = []
    for name in ("first", "second"):
        monkeypatch.setattr(setup, "ROOT", _checkout(tmp_path / name))
        keys.append(setup.hash_paths(*paths))
    assert keys[0] == keys[1]
    monkeypatch.setattr(setup, "ROOT", _checkout(tmp_path / "third", "intents: [greet, goodbye]\n"))
    assert setup.hash_paths(*paths) != keys[0]


def test_a_folder_readme_does_not_change_the_key_but_its_data_does(tmp_path, monkeypatch):
    """Editing a package's README must not retrain a model (the classifier takes ~10 minutes); its code and data do."""
    monkeypatch.setattr(setup, "ROOT", _checkout(tmp_path / "repo"))
    before = setup.hash_paths("bot/data")
    (tmp_path / "repo" / "bot" / "data" / "README.md").write_text("# notes\n", encoding="utf-8")
    assert setup.hash_paths("bot/data") == before
    (tmp_path / "repo" / "bot" / "data" / "stories.yml").write_text("stories: []\n", encoding="utf-8")
    assert setup.hash_paths("bot/data") != before
