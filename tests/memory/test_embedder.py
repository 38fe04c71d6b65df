"""The torch-free embedder gives the vectors sentence-transformers gave.

``minilm_reference.npz`` holds the vectors that sentence-transformers 6.2
(on torch 2.13, CPU) computed for every pattern and query of the retrieval
corpus with the same packaged all-MiniLM-L6-v2, and the sha256 of each text,
so a changed corpus cannot be compared with stale vectors.
"""
from __future__ import annotations

import hashlib
import pathlib

import numpy as np
import pytest

from services.memory.embedder import MiniLM
from tests.memory.retrieval_cases import PATTERNS, QUERIES

REFERENCE = pathlib.Path(__file__).with_name("minilm_reference.npz")
TEXTS = list(PATTERNS.values()) + [query for query, _ in QUERIES]


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return MiniLM()


def test_the_reference_covers_this_corpus():
    reference = np.load(REFERENCE)
    assert list(reference["sha256"]) == [hashlib.sha256(t.encode()).hexdigest() for t in TEXTS]


def test_vectors_match_sentence_transformers(model):
    reference = np.load(REFERENCE)["vectors"]
    ours = np.stack([model.embed(text) for text in TEXTS])
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    print(f"\ncosine similarity to sentence-transformers over {len(TEXTS)} texts: min {cosine.min():.7f}")
    assert cosine.min() > 0.999
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)  # normalised, as 2_Normalize


def test_long_text_is_truncated_to_the_models_256_tokens(model):
    long = " ".join(["momentum"] * 2000)
    assert len(model.tokenizer.encode(long).ids) == 256
    assert model.embed(long).shape == (384,)
