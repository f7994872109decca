"""Seed the knowledge base from ``knowledge_base/seed/entries_*.yaml`` (idempotent; run by ``core.manage init-db``).

* a seed entry missing from the database is inserted as published, author ``seed``;
* an entry whose seed content changed is updated (new published version) only if no person ever touched it - every
  version was written by ``seed``; otherwise the editors' work is kept and the entry is reported as such;
* entries no longer in the seed files are left alone (editors may still use them).

The search index is not touched here: ``python -m knowledge_base.cli ensure-index`` (run by set-up and at service
start) brings it in line with the database.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from knowledge_base.content import ContentError, check_slug, clean_content, to_json
from knowledge_base.orm import KBEntry, KBEntryVersion, utcnow
from knowledge_base.repository import content_of

SEED_DIR = Path(__file__).resolve().parent / "seed"
SEED_AUTHOR = "seed"
SEED_KEYS = {"id", "question", "alternatives", "answer", "department", "region", "source", "effective_from",
             "review_by", "expires_on", "tags", "counter_examples"}


class SeedError(ValueError):
    pass


def load_seed_entries(folder: Path = SEED_DIR) -> list[tuple[str, dict[str, Any]]]:
    """(slug, cleaned content) of every seed entry, in file order; raises :class:`SeedError` on any problem."""
    out: list[tuple[str, dict[str, Any]]] = []
    where: dict[str, str] = {}
    problems: list[str] = []
    for path in sorted(Path(folder).glob("entries_*.yaml")):
        items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        if not isinstance(items, list):
            raise SeedError(f"{path.name}: expected a list of entries")
        for i, item in enumerate(items, start=1):
            label = f"{path.name} #{i}"
            if not isinstance(item, dict) or "id" not in item:
                problems.append(f"{label}: not an entry with an id")
                continue
            slug = str(item["id"])
            unknown = set(item) - SEED_KEYS
            if unknown:
                problems.append(f"{label} ({slug}): unknown keys {sorted(unknown)}")
            problems += [f"{label} ({slug}): {e.message}" for e in check_slug(slug)]
            if slug in where:
                problems.append(f"{label}: id {slug} already used in {where[slug]}")
                continue
            where[slug] = label
            try:
                content = clean_content({k: v for k, v in item.items() if k in SEED_KEYS and k != "id"})
            except ContentError as exc:
                problems.append(f"{label} ({slug}): {exc}")
                continue
            out.append((slug, content))
    if problems:
        raise SeedError("invalid seed entries:\n  " + "\n  ".join(problems))
    return out


def _comparable(entry: KBEntry) -> dict[str, Any]:
    try:
        return clean_content(to_json(content_of(entry)))
    except ContentError:
        return content_of(entry)


def seed_knowledge_base(session: Session, folder: Path = SEED_DIR) -> str:
    entries = load_seed_entries(folder)
    slugs = [slug for slug, _ in entries]
    existing = {e.slug: e for e in session.scalars(select(KBEntry).where(KBEntry.slug.in_(slugs))).all()}
    touched_by_people: set[int] = set(session.scalars(
        select(KBEntryVersion.entry_id).where(KBEntryVersion.author != SEED_AUTHOR,
                                              KBEntryVersion.entry_id.in_([e.id for e in existing.values()]))
    ).all()) if existing else set()
    added = updated = unchanged = kept = 0
    now = utcnow()
    for slug, content in entries:
        entry = existing.get(slug)
        if entry is None:
            entry = KBEntry(slug=slug, status="published", current_version=1, published_version=1, created_at=now,
                            updated_at=now, **content)
            session.add(entry)
            session.add(KBEntryVersion(entry=entry, version=1, action="seed", status="published",
                                       content=to_json(content), author=SEED_AUTHOR, note="初始知识库", created_at=now))
            added += 1
            continue
        if _comparable(entry) == content:
            unchanged += 1
            continue
        if entry.id in touched_by_people:
            kept += 1
            continue
        for name, value in content.items():
            setattr(entry, name, value)
        entry.current_version += 1
        entry.status = "published"
        entry.published_version = entry.current_version
        entry.updated_at = now
        session.add(KBEntryVersion(entry=entry, version=entry.current_version, action="seed", status="published",
                                   content=to_json(content), author=SEED_AUTHOR, note="种子内容更新", created_at=now))
        updated += 1
    session.flush()
    return (f"{len(entries)} seed entries: {added} added, {updated} updated, {unchanged} unchanged, "
            f"{kept} kept as edited by editors")
