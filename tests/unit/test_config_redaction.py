"""``redact``: a password is masked where it stands as the password, never inside a word."""

from __future__ import annotations

import pytest

from satellites_repo import DataLayerConfig, ElasticsearchConfig, PostgresConfig, RedisConfig
from satellites_repo.config import redact

MASK = "**********"


@pytest.fixture
def config() -> DataLayerConfig:
    """The dev servers' password, which is also a user name and part of a module path."""
    return DataLayerConfig(postgres=PostgresConfig(password="postgres"))


def test_the_password_inside_a_longer_word_is_kept(config: DataLayerConfig) -> None:
    text = "sqlalchemy.dialects.postgresql.asyncpg: connection refused"
    assert redact(text, config) == text


def test_only_the_password_of_a_dsn_is_masked(config: DataLayerConfig) -> None:
    assert (
        redact("cannot reach postgresql://postgres:postgres@h/db", config)
        == f"cannot reach postgresql://postgres:{MASK}@h/db"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=postgres host=h", f"password={MASK} host=h"),
        ("PGPASSWORD=postgres", f"PGPASSWORD={MASK}"),
        ("password: postgres, user: postgres", f"password: {MASK}, user: postgres"),
        ("password = 'postgres'", f"password = '{MASK}'"),
        ('{"password": "postgres"}', f'{{"password": "{MASK}"}}'),
    ],
)
def test_a_password_pair_is_masked(config: DataLayerConfig, text: str, expected: str) -> None:
    assert redact(text, config) == expected


def test_a_longer_value_after_password_is_kept(config: DataLayerConfig) -> None:
    assert redact("password=postgresql", config) == "password=postgresql"


def test_a_quoted_exact_occurrence_is_masked(config: DataLayerConfig) -> None:
    assert redact("auth 'postgres' refused", config) == f"auth '{MASK}' refused"


def test_a_bare_word_equal_to_the_password_is_kept(config: DataLayerConfig) -> None:
    # Here "postgres" is the role, not the password: there is no way to tell them apart.
    assert redact("role postgres does not exist", config) == "role postgres does not exist"


def test_a_percent_encoded_password_in_a_url_is_masked() -> None:
    config = DataLayerConfig(redis=RedisConfig(password="p@ss/w"))
    assert redact("redis://:p%40ss%2Fw@cache:6379/0", config) == f"redis://:{MASK}@cache:6379/0"


def test_every_configured_password_is_masked() -> None:
    config = DataLayerConfig(
        postgres=PostgresConfig(password="pg-pw"),
        redis=RedisConfig(password="redis-pw"),
        elasticsearch=ElasticsearchConfig(username="elastic", password="es-pw"),
    )
    text = "postgresql://u:pg-pw@h/db, redis://:redis-pw@h/0, password='es-pw'"
    assert (
        redact(text, config)
        == f"postgresql://u:{MASK}@h/db, redis://:{MASK}@h/0, password='{MASK}'"
    )
