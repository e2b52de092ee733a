"""The hashing embedder: deterministic, unit length, and similar texts score higher."""

from __future__ import annotations

import numpy as np
import pytest

from satellites_repo.demo.embedding import DIM, Embedder, HashingEmbedder


def cosine(embedder: HashingEmbedder, first: str, second: str) -> float:
    left, right = embedder.embed([first, second])
    return float(left @ right)


def test_the_same_text_gives_the_same_vector_in_a_new_embedder() -> None:
    texts = ["Fixing a slow query in Postgres", "How to reset a password"]
    first = HashingEmbedder().embed(texts)
    again = HashingEmbedder().embed(texts)
    assert first.dtype == np.float32
    assert first.shape == (2, DIM)
    np.testing.assert_array_equal(first, again)


def test_the_vector_is_pinned_across_processes() -> None:
    """blake2b, not Python's salted hash(): stored embeddings stay comparable to new ones.

    "invoice" is one word (weight 1) and seven character 3-grams (weight 1/2 each).
    """
    vector = HashingEmbedder().embed(["invoice"])[0]
    nonzero = np.flatnonzero(vector)
    assert nonzero.tolist() == [1, 117, 156, 160, 207, 244, 267, 302]
    word, piece = 1 / np.sqrt(1 + 7 * 0.25), 0.5 / np.sqrt(1 + 7 * 0.25)
    np.testing.assert_allclose(
        vector[nonzero], [piece, word, piece, -piece, -piece, piece, -piece, -piece], rtol=1e-5
    )


def test_every_row_has_unit_length_even_without_words() -> None:
    vectors = HashingEmbedder().embed(["billing", "", "!!!", "a much longer text " * 50])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_similar_texts_score_higher_than_unrelated_ones() -> None:
    embedder = HashingEmbedder()
    query = "the invoice shows the wrong amount after a refund"
    related = "refund issued but the invoice amount is wrong"
    unrelated = "Kubernetes pods crash when the container image cannot be pulled"
    assert cosine(embedder, query, related) > cosine(embedder, query, unrelated) + 0.2


def test_inflections_stay_close() -> None:
    embedder = HashingEmbedder()
    assert cosine(embedder, "refunds invoices", "refund invoice") > cosine(
        embedder, "refunds invoices", "deploy cluster"
    )


def test_embed_one_is_a_plain_list_for_a_vector_column() -> None:
    vector = HashingEmbedder().embed_one("hello world")
    assert isinstance(vector, list)
    assert len(vector) == DIM
    assert all(isinstance(value, float) for value in vector)


def test_a_custom_dimension_and_the_protocol() -> None:
    embedder: Embedder = HashingEmbedder(dimension=16)
    assert embedder.embed(["x"]).shape == (1, 16)
    with pytest.raises(ValueError, match="dimension"):
        HashingEmbedder(dimension=0)
