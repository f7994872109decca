"""The knowledge base end to end with the real encoder and real databases: answering, declining and logging,
never serving withdrawn content, incremental index updates seen by other processes, rollback, preview, ensure-index."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from knowledge_base import repository as repo
from knowledge_base.index import read_current
from knowledge_base.orm import KBEntry, KBUnanswered
from knowledge_base.service import fingerprint

RESIDENCE = "residence-permit-apply"
NEW_ANSWER = "【测试更新】居住证请通过“京通”小程序在线申请，审核通过后邮寄到家。"


def test_residence_permit_question_is_answered_by_its_entry(kb):
    result = kb.answer("居住证怎么办理")
    assert result.answered and result.entry_id == RESIDENCE
    assert result.question == "北京居住证怎么办理？"
    assert "派出所" in result.answer and result.department
    assert result.score >= kb.config.threshold
    assert all(slug != RESIDENCE for slug, _, _ in result.suggestions)


def test_paraphrased_questions_reach_their_entries(kb):
    assert kb.answer("外地人在北京办居住证要满足什么条件").entry_id == RESIDENCE
    assert kb.answer("进京证怎么办").entry_id == "beijing-entry-permit-apply"


def test_unrelated_question_is_declined_and_counted_anonymised(kb, session):
    question = "给我讲个笑话吧，我的电话是13812345678"
    first = kb.answer(question)
    assert not first.answered and first.entry_id is None and first.answer is None
    assert first.score < kb.config.threshold
    kb.answer(question)
    kb.answer("给我讲个笑话吧，我的电话是13812345678 ")  # same normalised text: same fingerprint
    text, fp = fingerprint(question)
    row = session.scalar(select(KBUnanswered).where(KBUnanswered.fingerprint == fp))
    assert row is not None and row.count == 3
    assert "13812345678" not in row.question and "5678" in row.question and row.question == text
    total, rows = repo.list_unanswered(session)
    assert total == 1 and rows[0].id == row.id
    # the answered question was not logged
    kb.answer("居住证怎么办理")
    assert repo.list_unanswered(session)[0] == 1


def test_archived_and_expired_entries_are_never_served_even_with_a_stale_index(kb, session):
    assert kb.answer("居住证怎么办理").entry_id == RESIDENCE
    repo.archive(session, RESIDENCE, "测试编辑")
    session.commit()  # no sync: the index still holds the entry
    assert RESIDENCE in kb.index
    result = kb.answer("居住证怎么办理")
    assert result.entry_id != RESIDENCE and all(s != RESIDENCE for s, _, _ in result.suggestions)

    other = "beijing-entry-permit-apply"
    assert kb.answer("进京证怎么办").entry_id == other
    yesterday = kb.today() - timedelta(days=1)
    session.execute(update(KBEntry).where(KBEntry.slug == other).values(expires_on=yesterday))
    session.commit()
    result = kb.answer("进京证怎么办")
    assert result.entry_id != other and all(s != other for s, _, _ in result.suggestions)
    # the last day of validity (有效期至) is still served
    session.execute(update(KBEntry).where(KBEntry.slug == other).values(expires_on=kb.today()))
    session.commit()
    assert kb.answer("进京证怎么办").entry_id == other


def test_publish_serves_the_edit_without_rebuild_and_other_processes_pick_it_up(make_kb, session, index_dir):
    kb = make_kb()
    other_process = make_kb()
    assert other_process.answer("居住证怎么办理").entry_id == RESIDENCE  # loaded the seed snapshot
    before = read_current(index_dir)
    repo.edit(session, RESIDENCE, {"answer": NEW_ANSWER}, "编辑甲", note="更新办理渠道")
    session.commit()
    # an unpublished edit is not served
    assert kb.answer("居住证怎么办理").answer != NEW_ANSWER
    repo.publish(session, RESIDENCE, "编辑甲")
    session.commit()
    synced = kb.sync([RESIDENCE], session)
    assert synced["upserted"] == [RESIDENCE] and synced["removed"] == []
    after = read_current(index_dir)
    assert after[0] == before[0] and after[1] == before[1] + 1  # a delta on the same base: no rebuild
    served = kb.answer("居住证怎么办理")
    assert served.entry_id == RESIDENCE and served.answer == NEW_ANSWER
    # another process: the served text comes from the database, and the index reloads from CURRENT
    assert other_process.index.snapshot == before
    assert other_process.maybe_reload() is True
    assert other_process.index.snapshot == after
    assert other_process.index.versions[RESIDENCE] == kb.index.versions[RESIDENCE]
    assert other_process.answer("居住证怎么办理").answer == NEW_ANSWER


def test_unpublish_and_archive_remove_the_entry_from_the_index(kb, session):
    repo.unpublish(session, RESIDENCE, "编辑乙")
    session.commit()
    assert kb.sync([RESIDENCE], session)["removed"] == [RESIDENCE]
    assert RESIDENCE not in kb.index
    assert kb.answer("居住证怎么办理").entry_id != RESIDENCE
    # the service's wrappers commit and update the index in one call
    kb.publish(session, RESIDENCE, "编辑乙")
    assert RESIDENCE in kb.index and kb.answer("居住证怎么办理").entry_id == RESIDENCE
    kb.archive(session, RESIDENCE, "编辑乙")
    assert RESIDENCE not in kb.index and kb.answer("居住证怎么办理").entry_id != RESIDENCE


def test_rollback_restores_the_old_text(kb, session):
    original = repo.get_entry(session, RESIDENCE).answer
    repo.edit(session, RESIDENCE, {"answer": NEW_ANSWER}, "编辑甲")
    repo.publish(session, RESIDENCE, "编辑甲")
    session.commit()
    kb.sync([RESIDENCE], session)
    assert kb.answer("居住证怎么办理").answer == NEW_ANSWER
    entry = repo.rollback(session, RESIDENCE, 1, "编辑乙", note="新渠道尚未开通")
    session.commit()
    kb.sync([RESIDENCE], session)
    assert entry.answer == original and entry.status == "published" and entry.published_version == 4
    result = kb.answer("居住证怎么办理")
    assert result.answer == original and result.version == 4
    assert [v["action"] for v in repo.history(session, RESIDENCE)] == ["seed", "edit", "publish", "rollback"]


def test_preview_answers_from_drafts_that_citizens_do_not_see(kb, session):
    question = "北京地铁末班车一般几点"
    assert not kb.answer(question, log_unanswered=False).answered
    repo.create_draft(session, {"question": "北京地铁末班车是几点？", "alternatives": ["地铁最晚一班车几点发车"],
                                "answer": "北京地铁各线路末班车时间不同，一般在22:30至23:30之间，请以车站公告为准。",
                                "department": "北京市交通委员会"}, "编辑丙", slug="subway-last-train")
    session.commit()
    preview = kb.preview(session, question)
    assert preview.answered and preview.entry_id == "subway-last-train" and preview.draft
    assert not kb.answer(question, log_unanswered=False).answered  # citizens still get a decline
    assert not kb.preview(session, question, include_drafts=False).answered
    # an unpublished edit of a published entry is previewed, while the published text is served
    repo.edit(session, RESIDENCE, {"answer": NEW_ANSWER}, "编辑丙")
    session.commit()
    assert kb.preview(session, "居住证怎么办理").answer == NEW_ANSWER
    assert kb.answer("居住证怎么办理").answer != NEW_ANSWER


def test_ensure_index_applies_database_changes_incrementally(kb, session, index_dir):
    assert kb.ensure_index(session)["action"] == "up to date"
    repo.edit(session, RESIDENCE, {"answer": NEW_ANSWER}, "编辑丁")
    repo.publish(session, RESIDENCE, "编辑丁")
    repo.archive(session, "beijing-entry-permit-apply", "编辑丁")
    session.commit()  # changed without sync (e.g. by another tool)
    result = kb.ensure_index(session)
    assert result["action"] == "updated" and result["upserted"] == 1 and result["removed"] == 1
    assert kb.index.versions[RESIDENCE] == 3 and "beijing-entry-permit-apply" not in kb.index
    assert kb.ensure_index(session)["action"] == "up to date"
    rebuilt = kb.rebuild(session)
    assert rebuilt["action"] == "built" and read_current(index_dir)[1] == 0
    assert kb.answer("居住证怎么办理").answer == NEW_ANSWER


def test_a_question_about_another_city_is_declined_with_the_region_and_not_logged(kb, session):
    result = kb.answer("上海的失业金一个月能领多少钱")
    assert not result.answered and result.answer is None and result.other_region == "上海"
    assert repo.list_unanswered(session)[0] == 0  # not a gap of the knowledge base
    beijing = kb.answer("北京的失业金一个月能领多少钱")
    assert beijing.answered and beijing.other_region is None and beijing.entry_id.startswith("unemployment-benefit")
    preview = kb.preview(session, "上海的失业金一个月能领多少钱")
    assert not preview.answered and preview.other_region == "上海"


def test_answers_are_the_same_whether_bm25_runs_alongside_the_embedding_or_after_it(kb, session):
    """A new question's BM25 search runs on a worker thread while ONNX Runtime embeds it; the answer, confidence and
    suggestions must be exactly those of the one-thread computation - also with an entry withdrawn, when the
    decision has to read further down the candidate list."""
    from knowledge_base.retrieval import HybridRetriever
    from knowledge_base.service import FETCH_DEPTH

    def one_thread(question: str):
        vector = kb.query_encoder.encode_queries([question])[0]
        hits = HybridRetriever(kb.index, None, kb.config).candidates(question, query_vector=vector).hits(kb.config)
        return kb._decide(session, hits[:FETCH_DEPTH], {}, kb.config)

    questions = ["居住证怎么办理", "外地车进京要办什么手续", "孩子上幼儿园怎么报名", "公积金能取出来租房吗",
                 "我家狗要办证吗", "给我讲个笑话吧"]
    for withdrawn in (False, True):
        if withdrawn:
            repo.unpublish(session, RESIDENCE, "测试编辑")
            session.commit()
        for question in questions:
            kb._query_cache.clear()  # a new question: the worker-thread path
            assert kb.answer(question, log_unanswered=False, session=session) == one_thread(question), question
    assert kb.answer("居住证怎么办理", log_unanswered=False).entry_id != RESIDENCE


def test_a_question_closer_to_an_entrys_counter_example_is_not_answered_by_that_entry(kb, session):
    """Editors record near misses as counter-examples. To the encoder a cat question looks like the dog-registration
    entry (its best match); once an editor adds the citizen's wording as a counter-example and publishes, the bot
    no longer serves or suggests that entry for it, and the entry's own questions are still answered by it."""
    dog, cat = "dog-registration", "养只猫要不要去登记办证啊"
    assert "在北京养猫需要办证吗" in repo.get_entry(session, dog).counter_examples  # the seed records near misses too
    assert kb.retriever().search(cat, 1)[0].slug == dog  # the near miss

    repo.edit(session, dog, {"counter_examples": [*repo.get_entry(session, dog).counter_examples, "养只猫需要登记办证吗"]},
              "编辑戊", note="猫不办证，不适用本条")
    kb.publish(session, dog, "编辑戊")
    result = kb.answer(cat, log_unanswered=False)
    assert result.entry_id != dog and all(slug != dog for slug, _, _ in result.suggestions)
    near = next(h for h in kb.retriever().search(cat, 100) if h.slug == dog)  # ranked last
    assert near.near_miss and near.counter > near.dense
    assert kb.answer("养狗要去哪里办证", log_unanswered=False).entry_id == dog
    assert "养只猫需要登记办证吗" in kb.index.counter_texts[dog]
    history = repo.history(session, dog)
    assert history[-2]["note"] == "猫不办证，不适用本条" and history[-2]["changed_fields"] == ["counter_examples"]


def test_unhelpful_answers_are_counted_per_question_and_entry_apart_from_declines(kb, session):
    kb.log_unhelpful("居住证怎么办理，我手机13812345678", RESIDENCE)
    kb.log_unhelpful("居住证怎么办理，我手机13812345678 ", RESIDENCE)  # same normalised text
    kb.log_unhelpful("居住证怎么办理，我手机13812345678", "residence-permit-materials")  # another entry: its own row
    kb.answer("给我讲个笑话吧")  # a decline
    total, rows = repo.list_unanswered(session, kind="unhelpful")
    assert total == 2 and {(r.best_entry_slug, r.count) for r in rows} == {(RESIDENCE, 2),
                                                                          ("residence-permit-materials", 1)}
    assert all("13812345678" not in r.question for r in rows)
    assert [r.kind for r in repo.list_unanswered(session, kind="declined")[1]] == ["declined"]
    assert repo.list_unanswered(session)[0] == 3
    entry = repo.counter_example_from_unanswered(session, rows[0].id, "编辑己")
    session.commit()
    assert rows[0].question in entry.counter_examples and entry.status == "published"
    assert entry.published_version != entry.current_version  # takes effect when published
    assert repo.list_unanswered(session, kind="unhelpful")[0] == 1
