"""Knowledge base (知识库): the public self-query endpoint and the editors' API.

* ``GET /api/kb/search?q=`` - public, no login: the answer from a published entry, or a decline with suggestions.
  Declined questions are logged anonymised for editors.
* ``/api/kb/entries...``, ``/api/kb/preview``, ``/api/kb/unanswered...`` - roles ``editor`` and ``admin``: create,
  edit (every change a new version), publish/unpublish/archive/restore, history, rollback, preview (drafts included),
  import/export (CSV, XLSX, JSON), the unanswered-questions list and "create an entry from this question".
* ``/api/kb/me`` - editors: who the token is (the editors' page, ``/editor``, shows it after login).
* ``/api/kb/index`` - ``admin``: index status and rebuild (disaster recovery).

Publishing, unpublishing, archiving and rolling back a published entry update the search index incrementally right
after the database commit; other processes pick the new snapshot up on their next question.
"""
from __future__ import annotations

import json
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.auth import Principal, db_session, require_role
from knowledge_base import repository as repo
from knowledge_base.service import KnowledgeBase, get_knowledge_base

router = APIRouter(prefix="/api/kb", tags=["knowledge-base"])

EDITORS = require_role("editor", "admin")
ADMIN = require_role("admin")
DECLINE_MESSAGE = "抱歉，知识库中暂未找到可以直接回答该问题的内容。您可以看看下面的相关问题，或拨打12345热线由人工为您解答。"
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def knowledge_base() -> KnowledgeBase:
    """Dependency: the process-wide knowledge base (tests override it)."""
    return get_knowledge_base()


def _fail(exc: repo.KBError) -> HTTPException:
    if isinstance(exc, repo.InvalidContent):
        return HTTPException(exc.status_code, {"message": exc.message,
                                               "errors": [{"field": e.field, "message": e.message} for e in exc.errors]})
    return HTTPException(exc.status_code, exc.message)


def _author(principal: Principal) -> str:
    return f"{principal.name}（{principal.role}#{principal.token_id}）"


# --------------------------------------------------------------------------------------------- models


class ContentIn(BaseModel):
    question: str | None = Field(None, description="标准问")
    alternatives: list[str] | None = Field(None, description="相似问")
    answer: str | None = None
    department: str | None = None
    region: str | None = None
    source: str | None = None
    effective_from: date | None = None
    review_by: date | None = None
    expires_on: date | None = Field(None, description="有效期至（含当日）；之后不再提供")
    tags: list[str] | None = None
    counter_examples: list[str] | None = Field(None, description="反例问法：看似相关但本条不回答的问题（命中时不用本条作答）")

    def content(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if k in repo.CONTENT_FIELDS}


class EntryCreateIn(ContentIn):
    id: str | None = Field(None, description="编号（小写字母、数字、连字符）；不填自动生成")
    note: str = ""
    publish: bool = Field(False, description="创建后立即发布")


class EntryEditIn(ContentIn):
    note: str = ""
    expected_version: int | None = Field(None, description="编辑所基于的版本号；已被他人更新时返回409")


class ActionIn(BaseModel):
    note: str = ""
    expected_version: int | None = None


class RollbackIn(BaseModel):
    version: int = Field(ge=1)
    note: str = ""


class PreviewIn(BaseModel):
    question: str = Field(min_length=1, max_length=500)
    include_drafts: bool = True


class FromUnansweredIn(ContentIn):
    id: str | None = None


class ResolveIn(BaseModel):
    entry_id: str


class CounterExampleIn(BaseModel):
    entry_id: str | None = Field(None, description="加到哪个条目（默认：答复或建议的条目）")
    publish: bool = Field(False, description="添加后立即发布，使其马上生效")


class FeedbackIn(BaseModel):
    question: str = Field(min_length=1, max_length=500, description="市民的问题")
    entry_id: str = Field(min_length=1, max_length=120, description="答复所用的条目")
    helpful: bool = Field(description="答复是否有帮助")


# --------------------------------------------------------------------------------------------- public


@router.get("/search", summary="市民自助查询：知识库答案或相关问题")
def search(q: str = Query(..., min_length=1, max_length=500, description="问题"),
           kb: KnowledgeBase = Depends(knowledge_base), session: Session = Depends(db_session)) -> dict[str, Any]:
    result = kb.answer(q, session=session)
    data = result.to_dict()
    data.pop("draft", None)
    data["message"] = None if result.answered else DECLINE_MESSAGE
    return data


@router.post("/feedback", summary="市民对知识库答复的评价（没帮助的问题进入待处理列表，已脱敏）")
def feedback(body: FeedbackIn, kb: KnowledgeBase = Depends(knowledge_base),
             session: Session = Depends(db_session)) -> dict[str, Any]:
    try:
        repo.get_entry(session, body.entry_id)
    except repo.KBError as exc:
        raise _fail(exc) from exc
    if not body.helpful:
        kb.log_unhelpful(body.question, body.entry_id)
    return {"recorded": not body.helpful}


# --------------------------------------------------------------------------------------------- editors


@router.get("/me", summary="当前编辑令牌（名称与角色），供编辑页登录时核对")
def whoami(principal: Principal = Depends(EDITORS)) -> dict[str, Any]:
    return {"name": principal.name, "role": principal.role, "author": _author(principal)}


@router.get("/entries", summary="条目列表与检索")
def list_entries(status: str | None = Query(None, description="draft | published | archived"),
                 q: str | None = Query(None, max_length=200), department: str | None = None, tag: str | None = None,
                 region: str | None = None, expiring_before: date | None = None,
                 review_due_before: date | None = None, pending_only: bool = False,
                 limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0),
                 _: Principal = Depends(EDITORS), session: Session = Depends(db_session)) -> dict[str, Any]:
    try:
        total, rows = repo.list_entries(session, status=status, q=q, department=department, tag=tag, region=region,
                                        expiring_before=expiring_before, review_due_before=review_due_before,
                                        pending_only=pending_only, limit=limit, offset=offset)
    except repo.KBError as exc:
        raise _fail(exc) from exc
    return {"total": total, "items": [repo.entry_dict(e) for e in rows]}


@router.post("/entries", status_code=201, summary="新建条目（草稿，可选立即发布）")
def create_entry(body: EntryCreateIn, principal: Principal = Depends(EDITORS),
                 kb: KnowledgeBase = Depends(knowledge_base), session: Session = Depends(db_session)) -> dict[str, Any]:
    try:
        entry = repo.create_draft(session, body.content(), _author(principal), slug=body.id, note=body.note)
        if body.publish:
            repo.publish(session, entry.slug, _author(principal), note=body.note)
        session.commit()
    except repo.KBError as exc:
        session.rollback()
        raise _fail(exc) from exc
    out = repo.entry_dict(entry)
    if body.publish:
        out["index"] = kb.sync([entry.slug], session)
    return out


@router.get("/entries/export", summary="导出条目（csv | xlsx | json）")
def export_entries(format: str = Query("csv", pattern="^(csv|xlsx|json)$"), status: str | None = None,
                   _: Principal = Depends(EDITORS), session: Session = Depends(db_session)) -> Response:
    data = repo.export_entries(session, format, status=status)
    return Response(data, media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'attachment; filename="knowledge_base.{format}"'})


@router.post("/entries/import", summary="导入条目（请求体为文件内容：csv | xlsx | json）")
async def import_entries(request: Request, format: str | None = Query(None, pattern="^(csv|xlsx|json)$"),
                         partial: bool = Query(False, description="有错误行时仍导入其余正确的行"),
                         publish: bool = Query(False, description="导入后发布"),
                         dry_run: bool = Query(False, description="只校验不导入"),
                         principal: Principal = Depends(EDITORS), kb: KnowledgeBase = Depends(knowledge_base),
                         session: Session = Depends(db_session)) -> Response:
    data = await request.body()
    fmt = format or _format_from_content_type(request.headers.get("content-type", ""))
    if fmt is None:
        raise HTTPException(400, "请用 format 参数指明文件格式（csv、xlsx 或 json）")
    if not data:
        raise HTTPException(400, "请求体为空")

    def work() -> tuple[int, dict[str, Any]]:
        try:
            report = repo.import_entries(session, data, fmt, _author(principal), partial=partial,
                                         publish_rows=publish, dry_run=dry_run)
        except repo.KBError as exc:
            session.rollback()
            raise _fail(exc) from exc
        if not report.applied:
            session.rollback()
            return (422 if report.errors else 200), report.to_dict()
        session.commit()
        out = report.to_dict()
        if report.published:
            out["index"] = kb.sync(report.published, session)
        return 200, out

    status, payload = await run_in_threadpool(work)
    return Response(json.dumps(payload, ensure_ascii=False), status_code=status, media_type="application/json")


def _format_from_content_type(content_type: str) -> str | None:
    ct = content_type.split(";")[0].strip().lower()
    if ct in ("text/csv", "application/csv"):
        return "csv"
    if ct == "application/json":
        return "json"
    if ct in ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",):
        return "xlsx"
    return None


@router.get("/entries/{slug}", summary="条目详情")
def get_entry(slug: str, _: Principal = Depends(EDITORS), session: Session = Depends(db_session)) -> dict[str, Any]:
    try:
        return repo.entry_dict(repo.get_entry(session, slug))
    except repo.KBError as exc:
        raise _fail(exc) from exc


@router.patch("/entries/{slug}", summary="编辑条目（生成新版本；已发布条目须重新发布后生效）")
def edit_entry(slug: str, body: EntryEditIn, principal: Principal = Depends(EDITORS),
               session: Session = Depends(db_session)) -> dict[str, Any]:
    try:
        entry, changed = repo.edit(session, slug, body.content(), _author(principal), note=body.note,
                                   expected_version=body.expected_version)
        session.commit()
    except repo.KBError as exc:
        session.rollback()
        raise _fail(exc) from exc
    return {**repo.entry_dict(entry), "changed": changed}


def _status_action(action, slug: str, body: ActionIn, principal: Principal, kb: KnowledgeBase, session: Session,
                   reindex: bool) -> dict[str, Any]:
    try:
        kwargs = {"expected_version": body.expected_version} if action is repo.publish else {}
        entry, changed = action(session, slug, _author(principal), note=body.note, **kwargs)
        session.commit()
    except repo.KBError as exc:
        session.rollback()
        raise _fail(exc) from exc
    out = {**repo.entry_dict(entry), "changed": changed}
    if changed and reindex:
        out["index"] = kb.sync([slug], session)
    return out


@router.post("/entries/{slug}/publish", summary="发布当前版本")
def publish_entry(slug: str, body: ActionIn | None = None, principal: Principal = Depends(EDITORS),
                  kb: KnowledgeBase = Depends(knowledge_base), session: Session = Depends(db_session)) -> dict[str, Any]:
    return _status_action(repo.publish, slug, body or ActionIn(), principal, kb, session, reindex=True)


@router.post("/entries/{slug}/unpublish", summary="撤下（回到草稿）")
def unpublish_entry(slug: str, body: ActionIn | None = None, principal: Principal = Depends(EDITORS),
                    kb: KnowledgeBase = Depends(knowledge_base),
                    session: Session = Depends(db_session)) -> dict[str, Any]:
    return _status_action(repo.unpublish, slug, body or ActionIn(), principal, kb, session, reindex=True)


@router.post("/entries/{slug}/archive", summary="归档（不再提供）")
def archive_entry(slug: str, body: ActionIn | None = None, principal: Principal = Depends(EDITORS),
                  kb: KnowledgeBase = Depends(knowledge_base), session: Session = Depends(db_session)) -> dict[str, Any]:
    return _status_action(repo.archive, slug, body or ActionIn(), principal, kb, session, reindex=True)


@router.post("/entries/{slug}/restore", summary="从归档恢复为草稿")
def restore_entry(slug: str, body: ActionIn | None = None, principal: Principal = Depends(EDITORS),
                  kb: KnowledgeBase = Depends(knowledge_base), session: Session = Depends(db_session)) -> dict[str, Any]:
    return _status_action(repo.restore, slug, body or ActionIn(), principal, kb, session, reindex=False)


@router.get("/entries/{slug}/history", summary="版本历史（谁、何时、改了什么）")
def entry_history(slug: str, _: Principal = Depends(EDITORS),
                  session: Session = Depends(db_session)) -> list[dict[str, Any]]:
    try:
        return repo.history(session, slug)
    except repo.KBError as exc:
        raise _fail(exc) from exc


@router.post("/entries/{slug}/rollback", summary="回滚到第N版（生成新版本；已发布条目立即生效）")
def rollback_entry(slug: str, body: RollbackIn, principal: Principal = Depends(EDITORS),
                   kb: KnowledgeBase = Depends(knowledge_base), session: Session = Depends(db_session)) -> dict[str, Any]:
    try:
        entry = repo.rollback(session, slug, body.version, _author(principal), note=body.note)
        session.commit()
    except repo.KBError as exc:
        session.rollback()
        raise _fail(exc) from exc
    out = repo.entry_dict(entry)
    if entry.status == "published":
        out["index"] = kb.sync([slug], session)
    return out


@router.post("/preview", summary="预览：按机器人的方式回答（含草稿与未发布的修改）")
def preview(body: PreviewIn, _: Principal = Depends(EDITORS), kb: KnowledgeBase = Depends(knowledge_base),
            session: Session = Depends(db_session)) -> dict[str, Any]:
    return kb.preview(session, body.question, include_drafts=body.include_drafts).to_dict()


@router.get("/unanswered", summary="未能回答的问题与市民反馈没帮助的答复（已脱敏，按次数排序）")
def unanswered(include_resolved: bool = False, limit: int = Query(100, ge=1, le=500), offset: int = Query(0, ge=0),
               kind: str | None = Query(None, description="declined（未能回答）| unhelpful（答复没帮助）；不填为全部"),
               _: Principal = Depends(EDITORS), session: Session = Depends(db_session)) -> dict[str, Any]:
    try:
        total, rows = repo.list_unanswered(session, include_resolved=include_resolved, limit=limit, offset=offset,
                                           kind=kind)
    except repo.KBError as exc:
        raise _fail(exc) from exc
    return {"total": total, "items": [repo.unanswered_dict(r) for r in rows]}


@router.post("/unanswered/{unanswered_id}/counter-example", summary="把该问题加为条目的反例（可选立即发布）")
def counter_example_from_unanswered(unanswered_id: int, body: CounterExampleIn | None = None,
                                    principal: Principal = Depends(EDITORS),
                                    kb: KnowledgeBase = Depends(knowledge_base),
                                    session: Session = Depends(db_session)) -> dict[str, Any]:
    body = body or CounterExampleIn()
    try:
        entry = repo.counter_example_from_unanswered(session, unanswered_id, _author(principal),
                                                     entry_slug=body.entry_id)
        session.commit()
    except repo.KBError as exc:
        session.rollback()
        raise _fail(exc) from exc
    if body.publish:
        return _status_action(repo.publish, entry.slug, ActionIn(note="反例即时生效"), principal, kb, session,
                              reindex=True)
    return repo.entry_dict(entry)


@router.post("/unanswered/{unanswered_id}/entry", status_code=201, summary="用该问题新建条目（草稿）")
def entry_from_unanswered(unanswered_id: int, body: FromUnansweredIn, principal: Principal = Depends(EDITORS),
                          session: Session = Depends(db_session)) -> dict[str, Any]:
    try:
        entry = repo.entry_from_unanswered(session, unanswered_id, body.content(), _author(principal), slug=body.id)
        session.commit()
    except repo.KBError as exc:
        session.rollback()
        raise _fail(exc) from exc
    return repo.entry_dict(entry)


@router.post("/unanswered/{unanswered_id}/resolve", summary="标记为已由现有条目解决")
def resolve_unanswered(unanswered_id: int, body: ResolveIn, _: Principal = Depends(EDITORS),
                       session: Session = Depends(db_session)) -> dict[str, Any]:
    try:
        row = repo.resolve_unanswered(session, unanswered_id, body.entry_id)
        session.commit()
    except repo.KBError as exc:
        session.rollback()
        raise _fail(exc) from exc
    return repo.unanswered_dict(row)


# --------------------------------------------------------------------------------------------- index (admin)


@router.get("/index", summary="检索索引状态")
def index_status(_: Principal = Depends(ADMIN), kb: KnowledgeBase = Depends(knowledge_base)) -> dict[str, Any]:
    index = kb.index
    return {"snapshot": list(index.snapshot or ()), "entries": len(index), "rows": index.live_rows,
            "dense": index.kind, "tombstones": len(index.dead_rows), "mode": kb.config.mode,
            "threshold": kb.config.threshold}


@router.post("/index/rebuild", summary="重建检索索引（灾难恢复）")
def index_rebuild(_: Principal = Depends(ADMIN), kb: KnowledgeBase = Depends(knowledge_base),
                  session: Session = Depends(db_session)) -> dict[str, Any]:
    return kb.rebuild(session)
