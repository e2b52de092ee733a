"""Redis keys of tenant-scoped rows: built in one place, and never ambiguous."""

from __future__ import annotations

import pytest

from satellites_repo import TenantError
from satellites_repo.backends.redis import RedisBackend
from satellites_repo.config import RedisConfig
from satellites_repo.model import Registry
from tests.unit.models import Memos, Notes

REGISTRY = Registry([Notes, Memos])
BACKEND = RedisBackend(RedisConfig(key_prefix="p:"), REGISTRY)
MEMOS, NOTES = REGISTRY.spec_of_repository(Memos), REGISTRY.spec_of_repository(Notes)


def test_a_tenant_and_key_cannot_spell_another_tenants_key() -> None:
    assert BACKEND.key(MEMOS, "b:c", "a") != BACKEND.key(MEMOS, "c", "a:b")
    assert BACKEND.key(MEMOS, "1", "a:b") == "p:unit_memos:a%3Ab:1"
    assert BACKEND.row_of(MEMOS, BACKEND.key(MEMOS, "b:c", "a")) == ("a", "b:c")
    assert BACKEND.row_of(MEMOS, BACKEND.key(MEMOS, "c", "a:b")) == ("a:b", "c")


def test_a_wildcard_in_a_tenant_is_no_pattern() -> None:
    assert BACKEND.key(MEMOS, "1", "a*") == "p:unit_memos:a%2A:1"


def test_unscoped_keys_ignore_the_tenant_and_scoped_keys_need_it() -> None:
    assert BACKEND.key(NOTES, "1") == BACKEND.key(NOTES, "1", "acme") == "p:unit_notes:1"
    assert BACKEND.row_of(NOTES, "p:unit_notes:x:1") == (None, "x:1")
    with pytest.raises(TenantError, match="unit_memos is tenant-scoped"):
        BACKEND.key(MEMOS, "1")
