"""The int8 ONNX question encoder: close to the float32 encoder, independent of batching, refused when exported from
another encoder, and the knowledge base falls back to the full encoder (with a warning) when it is missing."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.config import get_settings
from encoder.onnx_query import CARD_FILE, OnnxQueryEncoder, OnnxQueryMismatch, export

# How citizens ask (not from any evaluation set).
QUESTIONS = [
    "孩子刚生下来户口怎么上啊，要去派出所吗",
    "外地车进京证一年能办几次",
    "我离职了公积金能不能全取出来",
    "家里老人八十了有没有什么补贴可以领",
    "小区晚上十一点还在施工扰民找谁管",
    "失业了怎么领失业金，要交够几年社保",
]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory, encoder_dir: Path) -> Path:
    """A fresh export (about 10 s), so the test covers the exporter and not only set-up's copy."""
    out = tmp_path_factory.mktemp("onnx-query") / "onnx-query"
    card = export(encoder_dir, out, threads=get_settings().torch_threads)
    assert card["check"]["cosine_to_float32_min"] >= 0.97
    return out


@pytest.fixture(scope="module")
def onnx_encoder(onnx_dir: Path, embedder) -> OnnxQueryEncoder:
    return OnnxQueryEncoder.load(onnx_dir, embedder)


def test_int8_question_vectors_stay_close_to_float32_and_keep_the_nearest_question(onnx_encoder, embedder):
    fast = onnx_encoder.encode_queries(QUESTIONS)
    full = embedder.encode_queries(QUESTIONS)
    assert fast.shape == full.shape == (len(QUESTIONS), 384) and fast.dtype == np.float32
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    cosines = (fast * full).sum(1)
    assert cosines.min() >= 0.97, cosines
    assert (np.argmax(fast @ full.T, axis=1) == np.arange(len(QUESTIONS))).all()


def test_a_questions_vector_does_not_depend_on_what_it_is_encoded_with(onnx_encoder):
    together = onnx_encoder.encode_queries(QUESTIONS)
    alone = np.stack([onnx_encoder.encode_query(q) for q in QUESTIONS])
    assert np.array_equal(together, alone)
    assert onnx_encoder.encode_queries([]).shape == (0, 384)
    with pytest.raises(TypeError):
        onnx_encoder.encode_queries("一个字符串")


def test_the_onnx_file_holds_the_layers_only_not_a_second_embedding_table(onnx_dir: Path):
    size = (onnx_dir / "layers_int8.onnx").stat().st_size
    assert 10_000_000 < size < 40_000_000  # 12 int8 layers; the 250k x 384 float table alone would be 384 MB


def test_an_export_from_another_encoder_is_refused(onnx_dir: Path, embedder, tmp_path: Path):
    other = tmp_path / "other"
    shutil.copytree(onnx_dir, other)
    card = json.loads((other / CARD_FILE).read_text())
    card["encoder"] = "0123456789abcdef-v9"
    (other / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(OnnxQueryMismatch, match="exported from encoder 0123456789abcdef-v9"):
        OnnxQueryEncoder.load(other, embedder)
    with pytest.raises(OnnxQueryMismatch, match="no readable"):
        OnnxQueryEncoder.load(tmp_path / "nothing", embedder)


def test_the_knowledge_base_uses_it_and_falls_back_to_the_full_encoder_with_a_warning(onnx_dir, embedder, tmp_path,
                                                                                       caplog):
    from knowledge_base.service import load_query_encoder

    base = get_settings()
    chosen = load_query_encoder(embedder, base.model_copy(update={"kb_query_encoder": "onnx-int8",
                                                                  "onnx_query_dir": onnx_dir}))
    assert isinstance(chosen, OnnxQueryEncoder) and chosen.kind == "onnx-int8"
    with caplog.at_level(logging.WARNING, logger="knowledge_base.service"):
        fallback = load_query_encoder(embedder, base.model_copy(update={"kb_query_encoder": "onnx-int8",
                                                                        "onnx_query_dir": tmp_path / "missing"}))
    assert fallback is embedder
    assert "no usable int8 ONNX question encoder" in caplog.text
    assert load_query_encoder(embedder, base.model_copy(update={"kb_query_encoder": "full"})) is embedder
    with pytest.raises(ValueError, match="onnx-int8, full"):
        load_query_encoder(embedder, base.model_copy(update={"kb_query_encoder": "fast"}))
