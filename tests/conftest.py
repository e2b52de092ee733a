"""Fixtures shared by every test."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def unique() -> str:
    """A short token that keeps one test's schema, keys and indices apart from another's."""
    return uuid.uuid4().hex[:10]
