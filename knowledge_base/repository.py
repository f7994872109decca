"""Editors' operations on knowledge entries, each recorded as an append-only version (who, what, when, why).

Model: ``KBEntry`` holds the entry's current content (the version numbered ``current_version``) and its status;
``published_version`` names the version citizens are served while the entry is ``published``. Editing a published
entry creates a new version that is *not* served until it is published again, so work in progress never leaks.
Every operation (create, edit, publish, unpublish, archive, restore, rollback, import, seed) appends a
``KBEntryVersion`` with the full content, the resulting status, the author and a note.

These functions change the database only and never commit: the caller commits, then asks the service
(:mod:`knowledge_base.service`) to update the search index for the entries that changed.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable

from sqlalchemy import Select, String, and_, bindparam, cast, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knowledge_base.content import (CONTENT_FIELDS, LIST_FIELDS, TEXT_LIST_FIELDS, ContentError, FieldError,
                                    check_slug, clean_content, from_json, new_slug, to_json)
from knowledge_base.orm import UNANSWERED_KINDS, KBEntry, KBEntryVersion, KBUnanswered, utcnow

STATUSES = ("draft", "published", "archived")
EXPORT_COLUMNS = ("id", "status", *CONTENT_FIELDS)
IMPORT_FORMATS = ("csv", "xlsx", "json")


class KBError(Exception):
    """Base of the errors editors can cause; ``message`` is Simplified Chinese."""

    status_code = 400

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class EntryNotFound(KBError):
    status_code = 404


class EntryConflict(KBError):
    status_code = 409


class InvalidContent(KBError):
    status_code = 422

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("；".join(f"{e.field}：{e.message}" for e in errors))


# --------------------------------------------------------------------------------------------- reading


def content_of(entry: KBEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in CONTENT_FIELDS}


def entry_dict(entry: KBEntry) -> dict[str, Any]:
    content = to_json(content_of(entry))
    return {
        "id": entry.slug,
        "status": entry.status,
        "current_version": entry.current_version,
        "published_version": entry.published_version,
        "unpublished_changes": entry.status == "published" and entry.published_version != entry.current_version,
        **content,
        "created_at": entry.created_at.isoformat() if entry.created_at else None,
        "updated_at": entry.updated_at.isoformat() if entry.updated_at else None,
    }


def get_entry(session: Session, slug: str, *, for_update: bool = False) -> KBEntry:
    stmt = select(KBEntry).where(KBEntry.slug == slug)
    if for_update:
        stmt = stmt.with_for_update()
    entry = session.scalar(stmt)
    if entry is None:
        raise EntryNotFound(f"知识条目 {slug} 不存在")
    return entry


def get_version(session: Session, entry: KBEntry, version: int) -> KBEntryVersion:
    row = session.scalar(select(KBEntryVersion).where(KBEntryVersion.entry_id == entry.id,
                                                      KBEntryVersion.version == version))
    if row is None:
        raise EntryNotFound(f"知识条目 {entry.slug} 没有第 {version} 版")
    return row


def history(session: Session, slug: str) -> list[dict[str, Any]]:
    """Every version, oldest first, with the fields that changed relative to the previous version."""
    entry = get_entry(session, slug)
    rows = session.scalars(select(KBEntryVersion).where(KBEntryVersion.entry_id == entry.id)
                           .order_by(KBEntryVersion.version)).all()
    out = []
    previous: dict[str, Any] | None = None
    for row in rows:
        changed = sorted(k for k in CONTENT_FIELDS if previous is None or previous.get(k) != row.content.get(k))
        out.append({"version": row.version, "action": row.action, "status": row.status, "author": row.author,
                    "note": row.note, "created_at": row.created_at.isoformat() if row.created_at else None,
                    "changed_fields": changed if previous is not None else [], "content": row.content,
                    "served": entry.status == "published" and entry.published_version == row.version})
        previous = row.content
    return out


def _like(text: str) -> str:
    escaped = text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


def _json_like(text: str) -> str:
    """A LIKE pattern that finds ``text`` inside a JSON column serialised with ASCII escapes (\\uXXXX)."""
    return _like(json.dumps(text, ensure_ascii=True)[1:-1])


def list_entries(session: Session, *, status: str | None = None, q: str | None = None, department: str | None = None,
                 tag: str | None = None, region: str | None = None, expiring_before: date | None = None,
                 review_due_before: date | None = None, pending_only: bool = False, limit: int = 50,
                 offset: int = 0) -> tuple[int, list[KBEntry]]:
    """Entries matching every given filter, newest change first; returns (total, page)."""
    conds = []
    if status:
        if status not in STATUSES:
            raise KBError(f"状态须为 {'、'.join(STATUSES)} 之一")
        conds.append(KBEntry.status == status)
    if pending_only:
        conds.append(and_(KBEntry.status == "published", KBEntry.published_version != KBEntry.current_version))
    if q:
        q = q.strip()
        conds.append(or_(KBEntry.slug.like(_like(q), escape="!"), KBEntry.question.like(_like(q), escape="!"),
                         KBEntry.answer.like(_like(q), escape="!"),
                                          cast(KBEntry.alternatives, String).like(_json_like(q), escape="!"),
                         cast(KBEntry.alternatives, String).like(_like(q), escape="!")))
    if department:
        conds.append(KBEntry.department.like(_like(department.strip()), escape="!"))
    if region:
        conds.append(KBEntry.region == region)
    if tag:
        tags_text = cast(KBEntry.tags, String)
        conds.append(or_(tags_text.like(_like(json.dumps(tag.strip(), ensure_ascii=True)), escape="!"),
                         tags_text.like(_like(json.dumps(tag.strip(), ensure_ascii=False)), escape="!")))
    if expiring_before:
        conds.append(and_(KBEntry.expires_on.is_not(None), KBEntry.expires_on <= expiring_before))
    if review_due_before:
        conds.append(and_(KBEntry.review_by.is_not(None), KBEntry.review_by <= review_due_before))
    stmt: Select = select(KBEntry).where(*conds)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(KBEntry.updated_at.desc(), KBEntry.id.desc())
                           .limit(max(1, min(limit, 500))).offset(max(0, offset))).all()
    return total, list(rows)


# --------------------------------------------------------------------------------------------- changes


def _append_version(session: Session, entry: KBEntry, action: str, author: str, note: str = "") -> KBEntryVersion:
    if not author or not author.strip():
        raise KBError("缺少操作人")
    entry.current_version = (entry.current_version or 0) + 1
    row = KBEntryVersion(entry=entry, version=entry.current_version, action=action, status=entry.status,
                         content=to_json(content_of(entry)), author=author.strip()[:100], note=note or "",
                         created_at=utcnow())
    session.add(row)
    entry.updated_at = utcnow()
    try:
        session.flush()
    except IntegrityError as exc:  # someone else appended the same version number concurrently
        raise EntryConflict(f"知识条目 {entry.slug} 刚被他人修改，请刷新后重试") from exc
    return row


def _check_expected(entry: KBEntry, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != entry.current_version:
        raise EntryConflict(f"知识条目 {entry.slug} 已更新到第 {entry.current_version} 版（你编辑的是第 "
                            f"{expected_version} 版），请刷新后重试")


def _clean(data: dict[str, Any], partial: bool) -> dict[str, Any]:
    try:
        return clean_content(data, partial=partial)
    except ContentError as exc:
        raise InvalidContent(exc.errors) from exc


def create_draft(session: Session, data: dict[str, Any], author: str, *, slug: str | None = None, note: str = "",
                 action: str = "create") -> KBEntry:
    """A new entry in status ``draft`` (version 1)."""
    slug = (slug or "").strip() or new_slug()
    errors = check_slug(slug)
    if errors:
        raise InvalidContent(errors)
    content = _clean(data, partial=False)
    if session.scalar(select(KBEntry.id).where(KBEntry.slug == slug)) is not None:
        raise EntryConflict(f"编号 {slug} 已存在")
    now = utcnow()
    entry = KBEntry(slug=slug, status="draft", current_version=0, published_version=None, created_at=now,
                    updated_at=now, **content)
    session.add(entry)
    try:
        session.flush()
    except IntegrityError as exc:
        raise EntryConflict(f"编号 {slug} 已存在") from exc
    _append_version(session, entry, action, author, note)
    return entry


def edit(session: Session, slug: str, changes: dict[str, Any], author: str, *, note: str = "",
         expected_version: int | None = None, action: str = "edit") -> tuple[KBEntry, bool]:
    """Apply content changes as a new version; returns (entry, changed). A published entry keeps serving its
    published version until :func:`publish` is called again."""
    entry = get_entry(session, slug, for_update=True)
    _check_expected(entry, expected_version)
    if entry.status == "archived":
        raise EntryConflict(f"知识条目 {slug} 已归档，请先恢复")
    content = _clean(changes, partial=True)
    merged = {**content_of(entry), **content}
    full = _clean(to_json(merged), partial=False)  # cross-field checks on the result
    if full == _normalised_current(entry):
        return entry, False
    for name, value in full.items():
        setattr(entry, name, value)
    _append_version(session, entry, action, author, note)
    return entry, True


def _normalised_current(entry: KBEntry) -> dict[str, Any]:
    try:
        return clean_content(to_json(content_of(entry)), partial=False)
    except ContentError:
        return content_of(entry)


def publish(session: Session, slug: str, author: str, *, note: str = "", expected_version: int | None = None,
            today: date | None = None) -> tuple[KBEntry, bool]:
    """Serve the current version; returns (entry, changed)."""
    entry = get_entry(session, slug, for_update=True)
    _check_expected(entry, expected_version)
    if entry.status == "archived":
        raise EntryConflict(f"知识条目 {slug} 已归档，请先恢复")
    if entry.status == "published" and entry.published_version == entry.current_version:
        return entry, False
    today = today or beijing_today()
    if entry.expires_on is not None and entry.expires_on < today:
        raise InvalidContent([FieldError("expires_on", f"已于 {entry.expires_on.isoformat()} 失效，不能发布")])
    entry.status = "published"
    row = _append_version(session, entry, "publish", author, note)
    entry.published_version = row.version
    return entry, True


def unpublish(session: Session, slug: str, author: str, *, note: str = "") -> tuple[KBEntry, bool]:
    entry = get_entry(session, slug, for_update=True)
    if entry.status != "published":
        return entry, False
    entry.status = "draft"
    entry.published_version = None
    _append_version(session, entry, "unpublish", author, note)
    return entry, True


def archive(session: Session, slug: str, author: str, *, note: str = "") -> tuple[KBEntry, bool]:
    entry = get_entry(session, slug, for_update=True)
    if entry.status == "archived":
        return entry, False
    entry.status = "archived"
    entry.published_version = None
    _append_version(session, entry, "archive", author, note)
    return entry, True


def restore(session: Session, slug: str, author: str, *, note: str = "") -> tuple[KBEntry, bool]:
    """An archived entry back to draft."""
    entry = get_entry(session, slug, for_update=True)
    if entry.status != "archived":
        return entry, False
    entry.status = "draft"
    _append_version(session, entry, "restore", author, note)
    return entry, True


def rollback(session: Session, slug: str, version: int, author: str, *, note: str = "",
             today: date | None = None) -> KBEntry:
    """A new version whose content copies version ``version``; a published entry serves it at once."""
    entry = get_entry(session, slug, for_update=True)
    if entry.status == "archived":
        raise EntryConflict(f"知识条目 {slug} 已归档，请先恢复")
    old = get_version(session, entry, version)
    content = from_json(old.content)
    if entry.status == "published":
        expires = content.get("expires_on")
        if expires is not None and expires < (today or beijing_today()):
            raise InvalidContent([FieldError("expires_on", f"第 {version} 版已于 {expires.isoformat()} 失效，"
                                                           "不能回滚为发布状态")])
    for name in CONTENT_FIELDS:
        setattr(entry, name, content.get(name, [] if name in LIST_FIELDS else None))
    row = _append_version(session, entry, "rollback", author, note or f"回滚到第 {version} 版")
    if entry.status == "published":
        entry.published_version = row.version
    return entry


def beijing_today() -> date:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


# --------------------------------------------------------------------------------------------- serving


@dataclass(frozen=True)
class ServedEntry:
    slug: str
    version: int
    question: str
    answer: str
    department: str
    content: dict[str, Any]


# Built once: the statement is on every question's path, and constructing it cost more than running it.
_SERVABLE_ROWS = (
    select(KBEntry.slug, KBEntry.status, KBEntry.expires_on, KBEntryVersion.version, KBEntryVersion.content)
    .join(KBEntryVersion, and_(KBEntryVersion.entry_id == KBEntry.id,
                               KBEntryVersion.version == KBEntry.published_version))
    .where(KBEntry.slug.in_(bindparam("slugs", expanding=True)))
)


def servable(session: Session, slugs: Iterable[str], today: date | None = None) -> dict[str, ServedEntry]:
    """The published content of those entries that may be served today.

    Not served: drafts, archived or unpublished entries, and entries whose ``expires_on`` (the last day served,
    有效期至) is past - checked on both the published version and the entry's current row, so an expiry an
    editor set is honoured even before it is published.
    """
    slugs = list(dict.fromkeys(slugs))
    if not slugs:
        return {}
    today = today or beijing_today()
    # status is checked below, not in SQL: with it in the WHERE clause SQLite picks the status index (which matches
    # nearly every row) over the unique slug index and scans the table - 10 ms per question at 100k entries
    rows = session.execute(_SERVABLE_ROWS, {"slugs": slugs}).all()
    out = {}
    for slug, status, current_expiry, version, content in rows:
        if status != "published":
            continue
        published = from_json(content)
        expiry = published.get("expires_on")
        if (expiry is not None and expiry < today) or (current_expiry is not None and current_expiry < today):
            continue
        out[slug] = ServedEntry(slug, version, published["question"], published["answer"],
                                published.get("department", ""), published)
    return out


def _published_rows(session: Session, slugs: Iterable[str] | None):
    """(slug, published version, current expires_on, published content) of published entries (all, or the given
    ones - then looked up by the slug index, status checked here; see :func:`servable`)."""
    stmt = (select(KBEntry.slug, KBEntry.status, KBEntry.published_version, KBEntry.expires_on,
                   KBEntryVersion.content)
            .join(KBEntryVersion, and_(KBEntryVersion.entry_id == KBEntry.id,
                                       KBEntryVersion.version == KBEntry.published_version)))
    stmt = stmt.where(KBEntry.slug.in_(list(slugs))) if slugs is not None else stmt.where(KBEntry.status == "published")
    return [(slug, version, expiry, content) for slug, status, version, expiry, content in session.execute(stmt).all()
            if status == "published"]


def published_state(session: Session, today: date | None = None,
                    slugs: Iterable[str] | None = None) -> dict[str, int]:
    """slug -> published version of every entry (or of the given ones) that may be served today: what the index
    should hold."""
    today = today or beijing_today()
    out = {}
    for slug, version, current_expiry, content in _published_rows(session, slugs):
        expiry = content.get("expires_on")
        if (expiry and date.fromisoformat(expiry) < today) or (current_expiry is not None and current_expiry < today):
            continue
        out[slug] = version
    return out


def published_contents(session: Session, slugs: Iterable[str] | None = None) -> dict[str, tuple[int, dict[str, Any]]]:
    """slug -> (published version, content) of published entries (all, or the given ones)."""
    return {slug: (version, from_json(content)) for slug, version, _, content in _published_rows(session, slugs)}


def pending_drafts(session: Session, limit: int = 500) -> list[KBEntry]:
    """Entries whose current content is not what is served: drafts, and published entries with newer edits."""
    return list(session.scalars(
        select(KBEntry).where(or_(KBEntry.status == "draft",
                                  and_(KBEntry.status == "published",
                                       KBEntry.published_version != KBEntry.current_version)))
        .order_by(KBEntry.updated_at.desc()).limit(limit)).all())


# --------------------------------------------------------------------------------------------- unanswered


def list_unanswered(session: Session, *, include_resolved: bool = False, limit: int = 100,
                    offset: int = 0, kind: str | None = None) -> tuple[int, list[KBUnanswered]]:
    """Logged questions, most frequent first; ``kind``: only ``declined`` or only ``unhelpful`` ones."""
    stmt = select(KBUnanswered)
    if kind is not None:
        if kind not in UNANSWERED_KINDS:
            raise KBError(f"未知类型 {kind}（可用：{'、'.join(UNANSWERED_KINDS)}）")
        stmt = stmt.where(KBUnanswered.kind == kind)
    if not include_resolved:
        stmt = stmt.where(KBUnanswered.resolved_entry_slug.is_(None))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(KBUnanswered.count.desc(), KBUnanswered.last_seen.desc())
                           .limit(max(1, min(limit, 500))).offset(max(0, offset))).all()
    return total, list(rows)


def unanswered_dict(row: KBUnanswered) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "question": row.question, "count": row.count,
            "best_entry_id": row.best_entry_slug,
            "best_score": row.best_score, "first_seen": row.first_seen.isoformat() if row.first_seen else None,
            "last_seen": row.last_seen.isoformat() if row.last_seen else None,
            "resolved_entry_id": row.resolved_entry_slug}


def entry_from_unanswered(session: Session, unanswered_id: int, data: dict[str, Any], author: str, *,
                          slug: str | None = None) -> KBEntry:
    """Create a draft answering a logged question (its text becomes the standard question unless given) and mark
    the question resolved by it."""
    row = session.get(KBUnanswered, unanswered_id)
    if row is None:
        raise EntryNotFound(f"未答问题 {unanswered_id} 不存在")
    if row.resolved_entry_slug:
        raise EntryConflict(f"该问题已由条目 {row.resolved_entry_slug} 解决")
    data = dict(data)
    data.setdefault("question", row.question)
    entry = create_draft(session, data, author, slug=slug, note=f"由未答问题 #{row.id} 创建")
    row.resolved_entry_slug = entry.slug
    return entry


def counter_example_from_unanswered(session: Session, unanswered_id: int, author: str, *,
                                   entry_slug: str | None = None) -> KBEntry:
    """Add a logged question to the counter-examples of the entry that answered it (``unhelpful``) or was suggested
    for it (``declined``), or of ``entry_slug``: a new version (publish it to take effect); the question is marked
    handled by that entry."""
    row = session.get(KBUnanswered, unanswered_id)
    if row is None:
        raise EntryNotFound(f"未答问题 {unanswered_id} 不存在")
    if row.resolved_entry_slug:
        raise EntryConflict(f"该问题已由条目 {row.resolved_entry_slug} 处理")
    slug = entry_slug or row.best_entry_slug
    if not slug:
        raise InvalidContent([FieldError("entry_id", "请指定要添加反例的条目")])
    entry = get_entry(session, slug)
    counter = [*(entry.counter_examples or []), row.question]
    entry, _ = edit(session, slug, {"counter_examples": counter}, author,
                    note=f"未答问题 #{row.id}（{'市民反馈答复没帮助' if row.kind == 'unhelpful' else '未能回答'}）加为反例")
    row.resolved_entry_slug = slug
    return entry


def resolve_unanswered(session: Session, unanswered_id: int, entry_slug: str) -> KBUnanswered:
    """Mark a logged question as answered by an existing entry."""
    row = session.get(KBUnanswered, unanswered_id)
    if row is None:
        raise EntryNotFound(f"未答问题 {unanswered_id} 不存在")
    get_entry(session, entry_slug)
    row.resolved_entry_slug = entry_slug
    return row


# --------------------------------------------------------------------------------------------- import / export


@dataclass
class RowError:
    row: int  # 1-based data row (a header line is row 0 in CSV/XLSX)
    id: str | None
    field: str
    message: str


@dataclass
class ImportReport:
    format: str
    rows: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    applied: bool = False
    dry_run: bool = False

    @property
    def changed_slugs(self) -> list[str]:
        return self.created + self.updated + [s for s in self.published if s not in self.created + self.updated]

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "rows": self.rows, "created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "published": self.published, "applied": self.applied,
                "dry_run": self.dry_run, "errors": [e.__dict__ for e in self.errors]}


def _records(data: bytes, fmt: str) -> list[dict[str, Any]]:
    if fmt == "json":
        payload = json.loads(data.decode("utf-8-sig"))
        if isinstance(payload, dict) and "entries" in payload:
            payload = payload["entries"]
        if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
            raise KBError("JSON 须为条目对象的数组（或含 entries 数组的对象）")
        return payload
    if fmt == "csv":
        text = data.decode("utf-8-sig")
        return [dict(r) for r in csv.DictReader(io.StringIO(text))]
    if fmt == "xlsx":
        from openpyxl import load_workbook

        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        ws = wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            return []
        names = [str(h).strip() if h is not None else "" for h in header]
        out = []
        for values in rows:
            if values is None or all(v is None or str(v).strip() == "" for v in values):
                continue
            out.append({names[i]: values[i] for i in range(min(len(names), len(values))) if names[i]})
        return out
    raise KBError(f"不支持的格式 {fmt}（可用：{'、'.join(IMPORT_FORMATS)}）")


def import_entries(session: Session, data: bytes, fmt: str, author: str, *, partial: bool = False,
                   publish_rows: bool = False, dry_run: bool = False) -> ImportReport:
    """Create or update entries from a CSV/XLSX/JSON file (columns as :data:`EXPORT_COLUMNS`; ``status`` ignored).

    Every row is validated first. With any row error nothing is imported unless ``partial`` (then the valid rows are).
    Rows whose ``id`` exists update that entry (a new version, action ``import``); rows without ``id`` or with a new
    one create drafts. ``publish_rows`` publishes every imported row. ``dry_run`` validates and reports only.
    Runs in a savepoint: on refusal the session is left as it was.
    """
    fmt = fmt.lower().lstrip(".")
    report = ImportReport(format=fmt, dry_run=dry_run)
    try:
        records = _records(data, fmt)
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise KBError(f"文件无法解析：{exc}") from exc
    except KBError:
        raise
    except Exception as exc:  # openpyxl raises assorted errors on a corrupt file
        raise KBError(f"文件无法解析：{type(exc).__name__}") from exc
    report.rows = len(records)
    valid: list[tuple[int, str | None, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for n, record in enumerate(records, start=1):
        record = {str(k).strip(): v for k, v in record.items() if k is not None and str(k).strip()}
        slug = str(record.pop("id", "") or "").strip() or None
        record.pop("status", None)
        record = {k: v for k, v in record.items() if not (v is None and k not in CONTENT_FIELDS)}
        row_errors: list[RowError] = []
        if slug is not None:
            row_errors += [RowError(n, slug, e.field, e.message) for e in check_slug(slug)]
            if slug in seen:
                row_errors.append(RowError(n, slug, "id", f"与第 {seen[slug]} 行编号重复"))
            seen.setdefault(slug, n)
        try:
            content = clean_content(record, partial=False)
        except ContentError as exc:
            row_errors += [RowError(n, slug, e.field, e.message) for e in exc.errors]
            content = None
        if slug is not None and not row_errors:
            existing = session.scalar(select(KBEntry).where(KBEntry.slug == slug))
            if existing is not None and existing.status == "archived":
                row_errors.append(RowError(n, slug, "id", "该条目已归档，请先恢复再导入"))
            if publish_rows and content and content.get("expires_on") and content["expires_on"] < beijing_today():
                row_errors.append(RowError(n, slug, "expires_on", "已失效，不能发布"))
        if row_errors:
            report.errors += row_errors
        else:
            valid.append((n, slug, content))
    if (report.errors and not partial) or dry_run:
        return report
    savepoint = session.begin_nested()
    try:
        for n, slug, content in valid:
            existing = session.scalar(select(KBEntry).where(KBEntry.slug == slug)) if slug else None
            if existing is None:
                entry = create_draft(session, to_json(content), author, slug=slug, note="导入", action="import")
                report.created.append(entry.slug)
            else:
                entry, changed = edit(session, existing.slug, to_json(content), author, note="导入", action="import")
                (report.updated if changed else report.unchanged).append(entry.slug)
            if publish_rows:
                _, published = publish(session, entry.slug, author, note="导入后发布")
                if published:
                    report.published.append(entry.slug)
        savepoint.commit()
    except KBError as exc:
        savepoint.rollback()
        report.errors.append(RowError(n, slug, "id", exc.message))
        report.created, report.updated, report.unchanged, report.published = [], [], [], []
        return report
    report.applied = True
    return report


def export_entries(session: Session, fmt: str, *, status: str | None = None) -> bytes:
    """All entries (or those with ``status``) as CSV (UTF-8 with BOM, for Excel), XLSX or JSON; importable again.
    In CSV/XLSX, alternatives and counter-examples are one per line inside their cell and tags are separated by
    ``|``."""
    stmt = select(KBEntry).order_by(KBEntry.slug)
    if status:
        stmt = stmt.where(KBEntry.status == status)
    entries = session.scalars(stmt).all()
    records = [{"id": e.slug, "status": e.status, **to_json(content_of(e))} for e in entries]
    fmt = fmt.lower()
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, indent=2).encode("utf-8")

    def flat(record: dict[str, Any]) -> list[Any]:
        out = []
        for col in EXPORT_COLUMNS:
            value = record.get(col)
            if col in TEXT_LIST_FIELDS:
                value = "\n".join(value or [])
            elif col == "tags":
                value = "|".join(map(str, value or []))
            out.append("" if value is None else value)
        return out

    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(EXPORT_COLUMNS)
        for record in records:
            writer.writerow(flat(record))
        return ("\ufeff" + buf.getvalue()).encode("utf-8")
    if fmt == "xlsx":
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        ws.title = "知识库"
        ws.append(list(EXPORT_COLUMNS))
        for record in records:
            ws.append(flat(record))
        buf = io.BytesIO()
        wb.save(buf)
        return buf.getvalue()
    raise KBError(f"不支持的格式 {fmt}（可用：{'、'.join(IMPORT_FORMATS)}）")

