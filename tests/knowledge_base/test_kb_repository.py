"""Editors' operations on real databases: versions with authors, publish semantics, conflicts, search filters,
import/export with row-level errors, the seed's idempotence and respect for editors' work."""
from __future__ import annotations

import io
import json
import shutil
from datetime import date

import pytest
import yaml
from openpyxl import load_workbook
from sqlalchemy import func, select

from knowledge_base import repository as repo
from knowledge_base.orm import KBEntry, KBEntryVersion, KBUnanswered
from knowledge_base.seed import SEED_DIR, seed_knowledge_base

DRAFT = {"question": "北京地铁末班车是几点？", "alternatives": ["地铁最晚一班几点", "末班地铁时间"],
         "answer": "各线路末班车时间不同，一般在22:30至23:30之间。", "department": "北京市交通委员会",
         "tags": ["地铁", "交通"]}


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_lifecycle_records_who_changed_what(session):
    entry = repo.create_draft(session, DRAFT, "编辑甲", slug="subway-last-train", note="新增")
    assert (entry.status, entry.current_version, entry.published_version) == ("draft", 1, None)
    entry, changed = repo.edit(session, "subway-last-train", {"answer": "以车站公告为准。"}, "编辑乙", note="简化")
    assert changed and entry.current_version == 2
    assert repo.edit(session, "subway-last-train", {"answer": "以车站公告为准。"}, "编辑乙")[1] is False
    entry, _ = repo.publish(session, "subway-last-train", "审核丙")
    assert entry.status == "published" and entry.published_version == 3
    entry, _ = repo.edit(session, "subway-last-train", {"alternatives": ["末班车几点"]}, "编辑甲")
    assert entry.published_version == 3 and entry.current_version == 4
    assert repo.entry_dict(entry)["unpublished_changes"] is True
    repo.archive(session, "subway-last-train", "审核丙", note="线路调整")
    session.commit()
    hist = repo.history(session, "subway-last-train")
    assert [(h["version"], h["action"], h["author"]) for h in hist] == [
        (1, "create", "编辑甲"), (2, "edit", "编辑乙"), (3, "publish", "审核丙"), (4, "edit", "编辑甲"),
        (5, "archive", "审核丙")]
    assert hist[1]["changed_fields"] == ["answer"] and hist[3]["changed_fields"] == ["alternatives"]
    assert hist[4]["note"] == "线路调整" and hist[4]["status"] == "archived"
    assert hist[0]["content"]["answer"] == DRAFT["answer"]  # versions are immutable snapshots
    with pytest.raises(repo.EntryConflict):
        repo.edit(session, "subway-last-train", {"answer": "x"}, "编辑甲")
    repo.restore(session, "subway-last-train", "审核丙")
    assert repo.get_entry(session, "subway-last-train").status == "draft"


def test_validation_conflicts_and_expiry(session):
    with pytest.raises(repo.InvalidContent) as err:
        repo.create_draft(session, {"question": " ", "answr": "x", "expires_on": "明天"}, "编辑甲")
    assert {e.field for e in err.value.errors} == {"question", "answer", "answr", "expires_on"}
    with pytest.raises(repo.InvalidContent):
        repo.create_draft(session, DRAFT, "编辑甲", slug="Bad Slug")
    repo.create_draft(session, DRAFT, "编辑甲", slug="subway-last-train")
    with pytest.raises(repo.EntryConflict):
        repo.create_draft(session, DRAFT, "编辑甲", slug="subway-last-train")
    with pytest.raises(repo.EntryConflict, match="第 1 版"):
        repo.edit(session, "subway-last-train", {"answer": "新"}, "编辑乙", expected_version=0)
    repo.edit(session, "subway-last-train", {"expires_on": "2020-01-01"}, "编辑乙")
    with pytest.raises(repo.InvalidContent, match="失效"):
        repo.publish(session, "subway-last-train", "编辑乙")
    with pytest.raises(repo.EntryNotFound):
        repo.publish(session, "no-such-entry", "编辑乙")


def test_list_filters_find_chinese_text_in_alternatives_and_tags(session):
    repo.create_draft(session, DRAFT, "编辑甲", slug="subway-last-train")
    session.commit()
    total, rows = repo.list_entries(session, q="最晚一班")  # only in an alternative (JSON column)
    assert [e.slug for e in rows] == ["subway-last-train"] and total == 1
    assert [e.slug for e in repo.list_entries(session, tag="地铁", status="draft")[1]] == ["subway-last-train"]
    total, rows = repo.list_entries(session, q="居住证", status="published", limit=5)
    assert total >= 5 and len(rows) == 5 and all(e.status == "published" for e in rows)
    assert repo.list_entries(session, department="交通委员会", status="draft")[0] == 1
    assert repo.list_entries(session, q="100%_!")[0] == 0  # LIKE metacharacters are literal


def _csv(rows: list[list[str]]) -> bytes:
    import csv

    buf = io.StringIO()
    csv.writer(buf).writerows([["id", "question", "alternatives", "answer", "department", "tags", "expires_on"],
                               *rows])
    return buf.getvalue().encode("utf-8")


def test_import_reports_row_errors_and_imports_nothing(session):
    before = count(session, KBEntry)
    data = _csv([["subway-last-train", "地铁末班车几点？", "末班车\n最晚一班", "一般在23点前。", "交通委", "地铁|交通", ""],
                 ["", "", "", "没有问题的答案", "", "", ""],
                 ["bad id", "问题", "", "答案", "", "", "2026-13-40"],
                 ["subway-last-train", "重复的编号？", "", "答案", "", "", ""]])
    report = repo.import_entries(session, data, "csv", "编辑甲")
    assert not report.applied and report.rows == 4
    errors = {(e.row, e.field) for e in report.errors}
    assert {(2, "question"), (3, "id"), (3, "expires_on"), (4, "id")} <= errors
    assert count(session, KBEntry) == before
    partial = repo.import_entries(session, data, "csv", "编辑甲", partial=True, publish_rows=True)
    assert partial.applied and partial.created == ["subway-last-train"] and partial.published == ["subway-last-train"]
    entry = repo.get_entry(session, "subway-last-train")
    assert entry.alternatives == ["末班车", "最晚一班"] and entry.tags == ["地铁", "交通"]
    assert entry.status == "published"
    assert [v["action"] for v in repo.history(session, "subway-last-train")] == ["import", "publish"]


def test_export_import_round_trip_in_every_format(session):
    repo.create_draft(session, {**DRAFT, "expires_on": "2030-12-31"}, "编辑甲", slug="subway-last-train")
    session.commit()
    for fmt in ("json", "csv", "xlsx"):
        data = repo.export_entries(session, fmt)
        if fmt == "xlsx":
            ws = load_workbook(io.BytesIO(data)).active
            assert [c.value for c in ws[1]][:3] == ["id", "status", "question"]
        report = repo.import_entries(session, data, fmt, "编辑乙", dry_run=True)
        assert not report.errors and report.rows == count(session, KBEntry), (fmt, report.errors[:3])
        report = repo.import_entries(session, data, fmt, "编辑乙")
        assert report.applied and not report.created and not report.updated, fmt
        assert len(report.unchanged) == report.rows
    records = json.loads(repo.export_entries(session, "json"))
    mine = next(r for r in records if r["id"] == "subway-last-train")
    assert mine["expires_on"] == "2030-12-31" and mine["alternatives"] == DRAFT["alternatives"]
    changed = [dict(mine, answer="以车站公告为准。")]
    report = repo.import_entries(session, json.dumps(changed).encode(), "json", "编辑乙")
    assert report.updated == ["subway-last-train"]
    assert repo.get_entry(session, "subway-last-train").answer == "以车站公告为准。"


def test_entry_from_unanswered_question(session):
    row = KBUnanswered(fingerprint="f" * 64, question="北京地铁末班车一般几点", count=3)
    session.add(row)
    session.flush()
    entry = repo.entry_from_unanswered(session, row.id, {"answer": "一般在23点前。"}, "编辑甲")
    assert entry.question == "北京地铁末班车一般几点" and entry.status == "draft"
    assert row.resolved_entry_slug == entry.slug
    assert repo.list_unanswered(session)[0] == 0 and repo.list_unanswered(session, include_resolved=True)[0] == 1
    with pytest.raises(repo.EntryConflict):
        repo.entry_from_unanswered(session, row.id, {"answer": "x"}, "编辑甲")


def test_seed_is_idempotent_and_respects_editors(session, tmp_path):
    n = count(session, KBEntry)
    assert n >= 200 and count(session, KBEntryVersion) == n
    assert seed_knowledge_base(session).startswith(f"{n} seed entries: 0 added, 0 updated, {n} unchanged")
    # an editor changes one entry; the seed files change two
    repo.edit(session, "residence-permit-apply", {"answer": "编辑改过的答案"}, "编辑甲")
    session.commit()
    folder = tmp_path / "seed"
    shutil.copytree(SEED_DIR, folder)
    part1 = folder / "entries_part1.yaml"
    items = yaml.safe_load(part1.read_text(encoding="utf-8"))
    for item in items:
        if item["id"] in ("residence-permit-apply", "residence-permit-materials"):
            item["answer"] = "种子更新后的答案"
    items.append({"id": "seed-new-entry", "question": "新增的种子问题？", "answer": "新增的种子答案。",
                  "effective_from": date(2025, 1, 1)})
    part1.write_text(yaml.safe_dump(items, allow_unicode=True), encoding="utf-8")
    summary = seed_knowledge_base(session, folder)
    session.commit()
    assert summary == f"{n + 1} seed entries: 1 added, 1 updated, {n - 2} unchanged, 1 kept as edited by editors"
    assert repo.get_entry(session, "residence-permit-apply").answer == "编辑改过的答案"
    updated = repo.get_entry(session, "residence-permit-materials")
    assert updated.answer == "种子更新后的答案" and updated.published_version == 2 and updated.status == "published"
    assert repo.get_entry(session, "seed-new-entry").status == "published"
