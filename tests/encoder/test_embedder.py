"""The shared Embedder: shapes, normalisation, batching, caching, and the opt-in int8 mode."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from encoder import Embedder, clear_embedder_cache, get_embedder

TEXTS = ["居住证怎么办理？", "小区暖气不热，已经三天了，家里老人孩子都冻感冒了，物业一直说在修但是没人来",
         "垃圾没人清运", "請問社保卡遺失後如何補辦？", "我家WiFi坏了", "路灯不亮"]


def test_outputs_are_unit_float32_rows(embedder):
    for vectors in (embedder.encode_queries(TEXTS), embedder.encode_passages(TEXTS)):
        assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
        assert vectors.flags["C_CONTIGUOUS"]
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.dim == 384 and embedder.max_seq_length == 512


def test_empty_and_invalid_input(embedder):
    empty = embedder.encode_queries([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    with pytest.raises(TypeError):
        embedder.encode_queries("一个字符串而不是列表")
    with pytest.raises(TypeError):
        embedder.encode_passages(["可以", None])


def test_batching_does_not_change_vectors(encoder_dir, embedder):
    small_batches = Embedder(encoder_dir, batch_size=2)
    np.testing.assert_allclose(small_batches.encode_passages(TEXTS), embedder.encode_passages(TEXTS), atol=2e-5)
    one_by_one = np.stack([embedder.encode_query(t) for t in TEXTS])
    np.testing.assert_allclose(one_by_one, embedder.encode_queries(TEXTS), atol=2e-5)


def test_num_threads_is_applied(encoder_dir):
    before = torch.get_num_threads()
    try:
        Embedder(encoder_dir, num_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_get_embedder_loads_each_folder_once(encoder_dir):
    clear_embedder_cache()
    try:
        first = get_embedder(encoder_dir)
        assert get_embedder(str(encoder_dir)) is first
        assert get_embedder(encoder_dir.resolve()) is first  # the same folder by another path (set-up links it)
    finally:
        clear_embedder_cache()


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder.convert"):
        Embedder(tmp_path / "nowhere")


def test_quantized_embedder_stays_close_and_ranks_the_same(encoder_dir, embedder):
    quantized = Embedder(encoder_dir, quantize=True)
    assert quantized.quantized
    a, b = quantized.encode_queries(TEXTS), embedder.encode_queries(TEXTS)
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.97, cos
    passages = ["办理北京居住证需要哪些材料", "暖气不热找谁", "社会保障卡丢失后如何补办"]
    queries = ["居住证怎么办理", "暖气一点都不热", "社保卡丢了怎么办"]
    for model in (quantized, embedder):
        scores = model.encode_queries(queries) @ model.encode_passages(passages).T
        assert list(scores.argmax(axis=1)) == [0, 1, 2]


def test_long_passages_are_truncated_not_rejected(embedder):
    long_text = "小区门口的道路坑洼不平，下雨天积水严重。" * 200  # far beyond 512 tokens
    vector = embedder.encode_passages([long_text])
    assert vector.shape == (1, 384) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_fast_path_equals_sentence_transformers_encode(embedder):
    """Embedder skips SentenceTransformer.encode's bookkeeping; the vectors must not change."""
    for name, ours in (("query", embedder.encode_queries(TEXTS)), ("passage", embedder.encode_passages(TEXTS))):
        reference = embedder._model.encode(TEXTS, prompt_name=name, normalize_embeddings=True,
                                           convert_to_numpy=True, show_progress_bar=False)
        np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_bf16_embedder_is_nearly_lossless(encoder_dir, embedder):
    fast = Embedder(encoder_dir, bf16=True)
    if not fast.bf16:
        pytest.skip("this CPU has no native bfloat16")
    cos = (fast.encode_passages(TEXTS) * embedder.encode_passages(TEXTS)).sum(axis=1)
    assert cos.min() > 0.999, cos
    assert fast.encode_queries(TEXTS).dtype == np.float32
    with pytest.raises(ValueError):
        Embedder(encoder_dir, quantize=True, bf16=True)


def test_concurrent_callers_get_correct_vectors(embedder):
    from concurrent.futures import ThreadPoolExecutor

    expected = embedder.encode_queries(TEXTS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: embedder.encode_queries([TEXTS[i % len(TEXTS)]])[0], range(24)))
    for i, vector in enumerate(results):
        np.testing.assert_allclose(vector, expected[i % len(TEXTS)], atol=2e-5)
