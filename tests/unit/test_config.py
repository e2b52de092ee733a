"""Configuration: the seed's defaults, validation that names the field, secrets kept secret."""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel

from satellites_repo import (
    ConfigurationError,
    DataLayerConfig,
    ElasticsearchConfig,
    FaissConfig,
    OutboxConfig,
    PostgresConfig,
    RedisConfig,
)

SETTINGS_PREFIX = "SATELLITES_"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(SETTINGS_PREFIX):
            monkeypatch.delenv(name)


def test_redis_config_defaults() -> None:
    config = RedisConfig()
    assert (config.host, config.port, config.db, config.password) == ("localhost", 6379, 0, None)


def test_postgres_config_defaults() -> None:
    config = PostgresConfig()
    assert config.host == "localhost"
    assert config.port == 5432
    assert config.database == "satellites"
    assert config.user == "postgres"
    assert (config.min_connections, config.max_connections) == (2, 10)


def test_elasticsearch_config_defaults() -> None:
    assert ElasticsearchConfig().hosts == ["http://localhost:9200"]


def test_faiss_config_defaults() -> None:
    config = FaissConfig()
    assert config.index_path == Path("./data/faiss")
    assert config.dimension == 1536


def test_data_layer_config_takes_the_seed_sections() -> None:
    config = DataLayerConfig(
        redis=RedisConfig(),
        postgres=PostgresConfig(),
        elasticsearch=ElasticsearchConfig(),
        faiss=FaissConfig(),
    )
    assert config.redis.host == "localhost"
    assert config.postgres.database == "satellites"


def test_config_override_keeps_password_comparable_but_hidden() -> None:
    config = RedisConfig(host="redis.prod.internal", port=6380, password="secret")
    assert config.host == "redis.prod.internal"
    assert config.port == 6380
    assert config.password == "secret"
    assert config.password_value() == "secret"
    assert "secret" not in repr(config)
    assert "secret" not in str(config)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: RedisConfig(port=70000), "port: "),
        (lambda: PostgresConfig(port=0), "port: "),
        (lambda: PostgresConfig(min_connections=5, max_connections=2), "min_connections (5)"),
        (lambda: FaissConfig(dimension=0), "dimension: "),
        (lambda: ElasticsearchConfig(hosts=["localhost:9200"]), "hosts[0]: "),
        (lambda: ElasticsearchConfig(hosts=[]), "hosts: "),
        (lambda: DataLayerConfig.model_validate({"redis": {"port": 0}}), "redis.port: "),
        (lambda: DataLayerConfig().replace(outbox={"batch_size": 0}), "outbox.batch_size: "),
        (lambda: RedisConfig().replace(db=-1), "db: "),
        (lambda: ElasticsearchConfig(on_mapping_conflict="ignore"), "on_mapping_conflict: "),
        (lambda: RedisConfig.model_validate_json('{"port": 0}'), "port: "),
    ],
)
def test_invalid_values_raise_a_configuration_error_naming_the_field(
    build: Callable[[], object], field: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build()
    assert field in str(caught.value)


def test_an_invalid_assignment_is_a_configuration_error() -> None:
    config = RedisConfig()
    with pytest.raises(ConfigurationError, match="port: "):
        config.port = 0
    assert config.port == 6379


def test_a_configuration_error_is_still_a_value_error() -> None:
    with pytest.raises(ValueError, match="port"):
        RedisConfig(port=0)


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(ConfigurationError) as caught:
        DataLayerConfig.model_validate(
            {"redis": {"port": 0}, "postgres": {"max_connections": 0}, "health_timeout": 0}
        )
    message = str(caught.value)
    for field in ("redis.port", "postgres.max_connections", "health_timeout"):
        assert f"{field}: " in message


def test_validation_error_never_echoes_a_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        PostgresConfig(password="hunter2-secret", min_connections=9, max_connections=1)
    assert "hunter2-secret" not in str(caught.value)
    assert "hunter2-secret" not in str(caught.value.__cause__)


TIMEOUT_FIELDS = [
    (RedisConfig, "timeout"),
    (RedisConfig, "call_timeout"),
    (PostgresConfig, "timeout"),
    (ElasticsearchConfig, "timeout"),
    (ElasticsearchConfig, "call_timeout"),
    (OutboxConfig, "relay_interval"),
    (OutboxConfig, "lease_seconds"),
    (OutboxConfig, "backoff_initial"),
    (OutboxConfig, "backoff_max"),
    (OutboxConfig, "follow_interval"),
    (OutboxConfig, "delivery_timeout"),
    (DataLayerConfig, "startup_timeout"),
    (DataLayerConfig, "health_timeout"),
]


@pytest.mark.parametrize(("section", "field"), TIMEOUT_FIELDS)
@pytest.mark.parametrize("seconds", [math.inf, -math.inf, math.nan, 0.0, -1.0])
def test_timeouts_must_be_finite_and_positive(
    section: type[BaseModel], field: str, seconds: float
) -> None:
    with pytest.raises(ConfigurationError, match=f"{field}: "):
        section.model_validate({field: seconds})


@pytest.mark.parametrize("seconds", [math.inf, math.nan])
def test_the_grace_period_must_be_finite(seconds: float) -> None:
    with pytest.raises(ConfigurationError, match="grace_seconds: "):
        OutboxConfig(grace_seconds=seconds)


def test_a_zero_grace_period_is_allowed() -> None:
    assert OutboxConfig(grace_seconds=0).grace_seconds == 0


def test_request_path_deadlines_have_defaults() -> None:
    config = DataLayerConfig()
    assert config.redis.call_timeout == 0.1
    assert config.elasticsearch.call_timeout == 5.0
    assert config.outbox.delivery_timeout == 2.0


def test_a_mapping_conflict_fails_start_unless_told_otherwise() -> None:
    assert ElasticsearchConfig().on_mapping_conflict == "fail"
    search = ElasticsearchConfig(password="pw", username="u").replace(on_mapping_conflict="warn")
    assert (search.on_mapping_conflict, search.password_value()) == ("warn", "pw")


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: RedisConfig(key_prefix=""), "key_prefix"),
        (lambda: RedisConfig(host=""), "host"),
        (lambda: RedisConfig(host="  "), "host"),
        (lambda: PostgresConfig(host=""), "host"),
        (lambda: PostgresConfig(database=""), "database"),
        (lambda: PostgresConfig(user=""), "user"),
    ],
)
def test_empty_names_are_rejected(build: Callable[[], object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{field}: must not be empty"):
        build()


@pytest.mark.parametrize(
    ("parse", "url"),
    [
        (RedisConfig.from_url, "redis://h:0"),
        (PostgresConfig.from_url, "postgresql://u@h:0/db"),
    ],
)
def test_url_port_zero_is_an_error_not_the_default(
    parse: Callable[[str], dict[str, object]], url: str
) -> None:
    with pytest.raises(ConfigurationError, match="port 0"):
        parse(url)


def test_elasticsearch_host_port_zero_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match=r"hosts\[0\]: .*port 0"):
        ElasticsearchConfig(hosts=["http://h:0"])


def test_an_elasticsearch_host_needs_a_host_name() -> None:
    with pytest.raises(ConfigurationError, match=r"hosts\[0\]: .*no host"):
        ElasticsearchConfig(hosts=["http://:9200"])


def test_elasticsearch_credentials_move_out_of_the_hosts() -> None:
    config = ElasticsearchConfig(hosts=["http://elastic:es%40pw@es1:9200", "https://es2:9201"])
    assert config.hosts == ["http://es1:9200", "https://es2:9201"]
    assert config.username == "elastic"
    assert config.password_value() == "es@pw"
    for text in (repr(config), str(config), config.model_dump_json()):
        assert "es@pw" not in text
        assert "es%40pw" not in text


def test_elasticsearch_credential_fields_win_over_those_in_a_host() -> None:
    config = ElasticsearchConfig(hosts=["http://u:in-url@es:9200"], username="v", password="field")
    assert (config.username, config.password_value()) == ("v", "field")
    assert config.replace(hosts=["http://u:other@es:9201"]).password_value() == "field"


def test_elasticsearch_hosts_must_agree_on_credentials() -> None:
    with pytest.raises(ConfigurationError, match="different credentials") as caught:
        ElasticsearchConfig(hosts=["http://u:pw-one@a:9200", "http://u:pw-two@b:9200"])
    assert "pw-one" not in str(caught.value)
    assert "pw-two" not in str(caught.value)


@pytest.mark.parametrize(
    "fields", [{"username": "elastic"}, {"password": "alone"}, {"hosts": ["http://u@es:9200"]}]
)
def test_elasticsearch_basic_auth_needs_both_halves(fields: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="basic auth needs username and password"):
        ElasticsearchConfig.model_validate(fields)


def test_an_invalid_elasticsearch_host_never_echoes_its_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        DataLayerConfig.model_validate({"elasticsearch": {"hosts": ["http://u:es-pw@h:0"]}})
    assert "elasticsearch.hosts[0]: " in str(caught.value)
    assert "es-pw" not in str(caught.value)


def test_from_env_reads_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATELLITES_POSTGRES__HOST", "db.internal")
    monkeypatch.setenv("SATELLITES_POSTGRES__PORT", "6543")
    monkeypatch.setenv("SATELLITES_REDIS__DB", "3")
    monkeypatch.setenv("SATELLITES_FAISS__DIMENSION", "384")
    config = DataLayerConfig.from_env()
    assert (config.postgres.host, config.postgres.port) == ("db.internal", 6543)
    assert config.redis.db == 3
    assert config.faiss.dimension == 384


def test_from_env_reads_one_url_per_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATELLITES_POSTGRES_URL", "postgresql://app:p%40ss@pg.internal:5433/kb")
    monkeypatch.setenv("SATELLITES_REDIS_URL", "redis://:rpass@cache.internal:6380/2")
    monkeypatch.setenv(
        "SATELLITES_ELASTICSEARCH_URL", "http://es1.internal:9200,http://es2.internal:9201"
    )
    config = DataLayerConfig.from_env()
    pg = config.postgres
    assert (pg.user, pg.host, pg.port, pg.database) == ("app", "pg.internal", 5433, "kb")
    assert pg.password_value() == "p@ss"
    assert (config.redis.host, config.redis.port, config.redis.db) == ("cache.internal", 6380, 2)
    assert config.redis.password_value() == "rpass"
    assert config.elasticsearch.hosts == ["http://es1.internal:9200", "http://es2.internal:9201"]


def test_nested_variables_override_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATELLITES_POSTGRES_URL", "postgresql://app@pg.internal:5433/kb")
    monkeypatch.setenv("SATELLITES_POSTGRES__DATABASE", "other")
    config = DataLayerConfig.from_env()
    assert (config.postgres.host, config.postgres.database) == ("pg.internal", "other")


def test_from_env_reads_a_dotenv_file(tmp_path: Path) -> None:
    env_file = tmp_path / "satellites.env"
    env_file.write_text("SATELLITES_REDIS__PORT=6390\n")
    assert DataLayerConfig.from_env(env_file).redis.port == 6390


def test_from_env_errors_name_the_variable_not_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATELLITES_REDIS__PORT", "99999")
    monkeypatch.setenv("SATELLITES_POSTGRES__PASSWORD", "topsecret")
    monkeypatch.setenv("SATELLITES_POSTGRES__MIN_CONNECTIONS", "20")
    with pytest.raises(ConfigurationError) as caught:
        DataLayerConfig.from_env()
    message = str(caught.value)
    assert "SATELLITES_REDIS__PORT" in message
    assert "SATELLITES_POSTGRES" in message
    assert "topsecret" not in message
    assert "99999" not in message


def test_a_malformed_url_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATELLITES_POSTGRES_URL", "mysql://u:pw-in-url@h/db")
    with pytest.raises(ConfigurationError) as caught:
        DataLayerConfig.from_env()
    assert "SATELLITES_POSTGRES_URL: postgres URL" in str(caught.value)
    assert "pw-in-url" not in str(caught.value)


def test_a_url_with_a_bad_port_never_echoes_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An unescaped "/" in the password makes urllib read "pw" as the port.
    monkeypatch.setenv("SATELLITES_POSTGRES_URL", "postgresql://u:pw/word@h/db")
    with pytest.raises(ConfigurationError, match="malformed") as caught:
        DataLayerConfig.from_env()
    assert "'pw'" not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("SATELLITES_REDIS_URL", "redis://h:0"),
        ("SATELLITES_POSTGRES_URL", "postgresql://u@h:0/db"),
        ("SATELLITES_ELASTICSEARCH_URL", "http://h:0"),
    ],
)
def test_from_env_url_port_zero_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, url: str
) -> None:
    monkeypatch.setenv(variable, url)
    with pytest.raises(ConfigurationError, match=f"{variable}.*port 0"):
        DataLayerConfig.from_env()


def test_a_bad_value_from_a_url_names_the_url_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATELLITES_REDIS_URL", "redis://cache.internal/not-a-number")
    with pytest.raises(ConfigurationError, match=r"SATELLITES_REDIS_URL \(db\): "):
        DataLayerConfig.from_env()


def test_garbage_json_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATELLITES_REDIS", "{not json")
    with pytest.raises(ConfigurationError, match="SATELLITES_REDIS is not valid JSON"):
        DataLayerConfig.from_env()


def test_a_section_as_json_merges_with_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATELLITES_REDIS", '{"port": 7000}')
    monkeypatch.setenv("SATELLITES_REDIS__DB", "3")
    config = DataLayerConfig.from_env()
    assert (config.redis.port, config.redis.db) == (7000, 3)


@pytest.mark.parametrize(
    "hosts",
    [
        '["http://es1.internal:9200", "http://es2.internal:9201"]',
        "http://es1.internal:9200, http://es2.internal:9201",
    ],
)
def test_elasticsearch_hosts_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, hosts: str
) -> None:
    monkeypatch.setenv("SATELLITES_ELASTICSEARCH__HOSTS", hosts)
    config = DataLayerConfig.from_env()
    assert config.elasticsearch.hosts == ["http://es1.internal:9200", "http://es2.internal:9201"]


def test_elasticsearch_hosts_with_broken_json_name_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SATELLITES_ELASTICSEARCH__HOSTS", '["http://es1:9200",')
    with pytest.raises(ConfigurationError, match="SATELLITES_ELASTICSEARCH__HOSTS: neither"):
        DataLayerConfig.from_env()


def test_elasticsearch_credentials_in_the_url_become_a_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SATELLITES_ELASTICSEARCH_URL", "https://elastic:essecret@es.internal:9243")
    config = DataLayerConfig.from_env()
    assert config.elasticsearch.hosts == ["https://es.internal:9243"]
    assert config.elasticsearch.username == "elastic"
    assert config.elasticsearch.password_value() == "essecret"
    assert "essecret" not in repr(config)


def test_non_finite_timeouts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATELLITES_REDIS__TIMEOUT", "inf")
    monkeypatch.setenv("SATELLITES_STARTUP_TIMEOUT", "nan")
    with pytest.raises(ConfigurationError) as caught:
        DataLayerConfig.from_env()
    assert "SATELLITES_REDIS__TIMEOUT: Input should be a finite number" in str(caught.value)
    assert "SATELLITES_STARTUP_TIMEOUT: Input should be a finite number" in str(caught.value)


def test_secrets_are_absent_from_the_whole_config_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATELLITES_POSTGRES_URL", "postgresql://app:pgsecret@h/db")
    monkeypatch.setenv("SATELLITES_REDIS_URL", "redis://:redissecret@h/0")
    config = DataLayerConfig.from_env()
    for text in (repr(config), str(config), config.model_dump_json()):
        assert "pgsecret" not in text
        assert "redissecret" not in text
