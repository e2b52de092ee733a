"""Configuration for every backend, with the seed's names and defaults.

The models are plain pydantic models, but an invalid value never surfaces as pydantic's
``ValidationError``: constructing a section, ``replace()``, ``model_validate()`` or an
assignment raises ``ConfigurationError`` naming the field (``redis.port: ...``).
``DataLayerConfig.from_env()`` reads ``SATELLITES_*`` variables through pydantic-settings,
either field by field (``SATELLITES_POSTGRES__HOST``) or as one URL per backend
(``SATELLITES_POSTGRES_URL``); fields given one by one override the URL's parts. Its
errors name the variable instead of the field.

Passwords are ``Secret`` values: they print as ``**********`` in reprs, logs and errors,
and only ``get_secret_value()`` reveals them (to the drivers, never to a message).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from satellites_repo.errors import ConfigurationError

__all__ = [
    "DataLayerConfig",
    "ElasticsearchConfig",
    "EventsConfig",
    "FaissConfig",
    "MappingConflict",
    "OutboxConfig",
    "PostgresConfig",
    "RedisConfig",
    "Secret",
]


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty or blank")
    return text


def _elasticsearch_host(url: str) -> str:
    _split_url(url, "elasticsearch", {"http", "https"})
    return url


Port = Annotated[int, Field(ge=1, le=65535)]
MappingConflict = Literal["fail", "warn"]
"""What start does when a search index holds a field whose declared type or options changed."""
# A timeout of inf or NaN would make a deadline that never fires (or never compares).
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Name = Annotated[str, AfterValidator(_not_blank)]
ElasticsearchHost = Annotated[str, AfterValidator(_elasticsearch_host)]


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _snapshot_url(url: str) -> str:
    """``s3://bucket[/prefix]``, with a valid bucket name and no credentials in it."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ValueError("must be an s3://bucket/prefix URL")
    if "@" in parts.netloc or not _BUCKET.match(parts.netloc):
        raise ValueError(
            "needs a bucket name of 3-63 lowercase letters, digits, '.' or '-' after s3:// "
            "(credentials go in s3_access_key_id and s3_secret_access_key, never in the URL)"
        )
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query or fragment")
    return url


def _http_endpoint(url: str) -> str:
    _split_url(url, "faiss.s3_endpoint_url", {"http", "https"})
    return url


SnapshotUrl = Annotated[str, AfterValidator(_snapshot_url)]
HttpEndpoint = Annotated[str, AfterValidator(_http_endpoint)]


class Secret(SecretStr):
    """A password that never shows itself, yet still compares equal to its plain text.

    Equality with a plain ``str`` keeps the seed's ``config.password == "secret"`` true
    without revealing anything in a repr or a message.
    """

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.get_secret_value() == other
        return super().__eq__(other)

    def __hash__(self) -> int:
        return hash(self.get_secret_value())


def _reveal(secret: SecretStr | str | None) -> str | None:
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


class _Section(BaseModel):
    """Shared model settings: strict field names, no secret ever echoed in an error.

    Every way in (construction, ``model_validate*``, assignment) turns pydantic's
    ``ValidationError`` into ``ConfigurationError``, so callers catch one error type.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, validate_assignment=True)

    def __init__(self, /, **data: Any) -> None:
        with _configuration_errors():
            super().__init__(**data)

    # Marks this __init__ as a plain wrapper: pydantic-core then validates nested sections
    # itself instead of calling it, so an error keeps its full location (redis.port) and is
    # converted once, by the outermost section.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Self:
        with _configuration_errors():
            return super().model_validate(obj, **options)

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **options: Any) -> Self:
        with _configuration_errors():
            return super().model_validate_json(json_data, **options)

    @classmethod
    def model_validate_strings(cls, obj: Any, **options: Any) -> Self:
        with _configuration_errors():
            return super().model_validate_strings(obj, **options)

    def __setattr__(self, name: str, value: Any) -> None:
        with _configuration_errors():
            super().__setattr__(name, value)

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` applied (``model_copy`` would skip validation)."""
        return self.model_validate({**self.model_dump(), **changes})


class RedisConfig(_Section):
    """Where the cache lives, and the prefix that keeps this layer's keys apart.

    ``key_prefix`` must not be empty: it is what keeps this layer's keys apart from
    everything else in the database, and what test cleanup deletes by. ``timeout``: the
    client's connect and socket timeout. ``call_timeout``: the deadline for one cache call
    on the request path; a slower Redis read falls back to Postgres. It bounds the whole
    call, the client's own retries and backoff included, so a struggling Redis cannot
    stack retries onto a request.
    """

    host: Name = "localhost"
    port: Port = 6379
    db: Annotated[int, Field(ge=0)] = 0
    password: Secret | None = None
    username: str | None = None
    key_prefix: Name = "sat:"
    timeout: Seconds = 5.0
    call_timeout: Seconds = 0.1

    def password_value(self) -> str | None:
        """The plain password, for the driver only."""
        return _reveal(self.password)

    @classmethod
    def from_url(cls, url: str) -> dict[str, Any]:
        """The fields a ``redis://[user:password@]host[:port][/db]`` URL sets."""
        parts = _split_url(url, "redis", {"redis", "rediss"})
        fields = _host_and_port(parts) | _credentials(parts)
        database = parts.path.lstrip("/")
        if database:
            fields["db"] = database
        return fields


class PostgresConfig(_Section):
    """The source of truth. ``schema_name`` sets the search_path (tests use one per test).

    ``pre_ping`` tests each pooled connection before use: one more round trip per unit of
    work. Off by default: a connection broken by a server restart fails once, is
    discarded, and the pool reconnects.
    """

    host: Name = "localhost"
    port: Port = 5432
    database: Name = "satellites"
    user: Name = "postgres"
    password: Secret | None = None
    min_connections: Annotated[int, Field(ge=0)] = 2
    max_connections: Annotated[int, Field(ge=1)] = 10
    schema_name: str | None = None
    timeout: Seconds = 10.0
    pre_ping: bool = False

    @model_validator(mode="after")
    def _pool_bounds(self) -> Self:
        if self.min_connections > self.max_connections:
            raise ValueError(
                f"min_connections ({self.min_connections}) must not exceed "
                f"max_connections ({self.max_connections})"
            )
        return self

    def password_value(self) -> str | None:
        """The plain password, for the driver only."""
        return _reveal(self.password)

    @classmethod
    def from_url(cls, url: str) -> dict[str, Any]:
        """The fields a ``postgresql://user:password@host:port/database`` URL sets."""
        parts = _split_url(url, "postgres", {"postgres", "postgresql", "postgresql+asyncpg"})
        fields = _host_and_port(parts) | _credentials(parts)
        if "username" in fields:
            fields["user"] = fields.pop("username")
        database = parts.path.lstrip("/")
        if database:
            fields["database"] = database
        return fields


class ElasticsearchConfig(_Section):
    """The search cluster. ``index_prefix`` namespaces this layer's indices and aliases.

    Credentials written into a host (``http://user:password@host:9200``) are moved into
    ``username`` and ``password``, so the password is a ``Secret`` and no host shows it;
    ``username``/``password`` given as fields win over those in the hosts. All hosts must
    carry the same credentials (one client, one login), and basic auth needs both.
    ``timeout``: the client's request timeout. ``call_timeout``: the deadline for one
    search call, the client's retries included. ``on_mapping_conflict``: what start does
    when an existing index holds a field whose declared type or options changed, which only
    a reindex can apply: ``fail`` naming it and the command to run, or ``warn`` and run on
    the index as it is (``satellites reindex`` starts so, since it is the fix).
    """

    hosts: list[ElasticsearchHost] = Field(
        default_factory=lambda: ["http://localhost:9200"], min_length=1
    )
    username: str | None = None
    password: Secret | None = None
    index_prefix: str = ""
    refresh: Literal["false", "true", "wait_for"] = "false"
    timeout: Seconds = 10.0
    call_timeout: Seconds = 5.0
    on_mapping_conflict: MappingConflict = "fail"

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_hosts(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("hosts"), list):
            return data
        hosts, found = [], []
        for host in data["hosts"]:
            bare, credentials = _without_credentials(host) if isinstance(host, str) else (host, {})
            hosts.append(bare)
            if credentials:
                found.append(credentials)
        if any(credentials != found[0] for credentials in found):
            raise ValueError("the hosts carry different credentials; one client has one login")
        login = found[0] if found else {}
        unset = {key: value for key, value in login.items() if data.get(key) is None}
        return data | unset | {"hosts": hosts}

    @model_validator(mode="after")
    def _complete_login(self) -> Self:
        if (self.username is None) != (self.password is None):
            given = "username" if self.password is None else "password"
            raise ValueError(f"{given} is set alone; basic auth needs username and password")
        return self

    def password_value(self) -> str | None:
        """The plain password, for the driver only."""
        return _reveal(self.password)

    @classmethod
    def from_url(cls, url: str) -> dict[str, Any]:
        """The fields a comma-separated list of ``http(s)://[user:password@]host:port`` sets."""
        return {"hosts": _host_list(url)}


class FaissConfig(_Section):
    """The in-process vector index: where snapshots live and how vectors are indexed.

    ``snapshot_url`` (``s3://bucket/prefix``) keeps snapshots in an S3-compatible store
    too, so a new instance starts from the newest one there instead of from Postgres;
    ``s3_endpoint_url`` points at a store other than AWS (MinIO, s3proxy). The access
    key pair are ``Secret`` values; without them the client's usual AWS credential
    chain applies. ``snapshot_interval``: seconds between snapshots while running (none
    if unset; one is always taken at ``stop()``). ``snapshot_retention``: how many
    snapshots the store keeps.
    """

    index_path: Path = Field(default_factory=lambda: Path("./data/faiss"))
    dimension: Annotated[int, Field(gt=0)] = 1536
    index_type: Literal["flat", "hnsw"] = "flat"
    hnsw_m: Annotated[int, Field(ge=4, le=256)] = 32
    hnsw_ef_construction: Annotated[int, Field(ge=8)] = 200
    hnsw_ef_search: Annotated[int, Field(ge=8)] = 1536  # recall@10 >= 0.95 at 100k random 384-d
    snapshot_url: SnapshotUrl | None = None
    snapshot_interval: Seconds | None = None
    snapshot_retention: Annotated[int, Field(ge=1, le=1000)] = 3
    s3_endpoint_url: HttpEndpoint | None = None
    s3_region: Name = "us-east-1"
    s3_access_key_id: Secret | None = None
    s3_secret_access_key: Secret | None = None
    s3_timeout: Seconds = 60.0

    @model_validator(mode="after")
    def _complete_keys(self) -> Self:
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            given = (
                "s3_access_key_id" if self.s3_secret_access_key is None else "s3_secret_access_key"
            )
            raise ValueError(f"{given} is set alone; S3 needs both keys of the pair")
        return self

    def s3_keys(self) -> tuple[str, str] | None:
        """The plain access key pair, for the S3 client only."""
        key, secret = _reveal(self.s3_access_key_id), _reveal(self.s3_secret_access_key)
        return (key, secret) if key and secret else None


class OutboxConfig(_Section):
    """The transactional outbox: how the relay retries and how FAISS follows the log.

    ``relay``: run a relay in this process. ``follow``: keep this process's FAISS index
    in step with the outbox (catch up at start, then follow); off for processes that
    never query vectors. ``grace_seconds``: how long a new row is left to the fast path
    before a relay may take it. ``lease_seconds``: how long a claimed row stays with its
    relay before another may retry it (a relay that died loses nothing).
    ``delivery_timeout``: the deadline of the after-commit delivery; past it the commit
    returns and the relay finishes the work.
    """

    relay: bool = True
    follow: bool = True
    relay_interval: Seconds = 1.0
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 500
    lease_seconds: Seconds = 30.0
    grace_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 5.0
    max_attempts: Annotated[int, Field(ge=1)] = 10
    backoff_initial: Seconds = 1.0
    backoff_max: Seconds = 300.0
    follow_interval: Seconds = 1.0
    delivery_timeout: Seconds = 2.0


class EventsConfig(_Section):
    """The event bus, and how durable subscribers are retried.

    ``backend``: ``memory`` (``InProcessEventBus``: plain handlers in this process,
    durable ones delivered from Postgres) or ``rabbitmq`` (``RabbitMQEventBus`` on the
    broker at ``host``/``port``; install ``satellites-repo[rabbitmq]``). ``url``
    (``amqp://user:password@host:port/vhost``) sets the connection fields in one go, the
    password kept as a ``Secret``; fields given alongside win. ``exchange`` is the topic
    exchange events are published to (routing key: the event type); ``queue_prefix``
    names the durable queues (``<prefix><subscriber>``, dead letters in
    ``<prefix><subscriber>.dead``). A durable subscriber's handler gets
    ``max_attempts`` tries, ``Backoff(backoff_initial, backoff_max)`` apart, each within
    ``handler_timeout``; then the event is dead-lettered (``satellites events retry``
    revives it). ``poll_interval``, ``batch_size``: how often and how many deliveries a
    durable subscriber of the in-process bus claims from Postgres. ``confirm_timeout``:
    how long a publish waits for the broker's confirms before the outbox keeps the events
    owed. ``prefetch``: unacknowledged messages a RabbitMQ consumer holds.
    """

    backend: Literal["memory", "rabbitmq"] = "memory"
    host: Name = "localhost"
    port: Port = 5672
    username: Name = "guest"
    password: Secret | None = None
    virtual_host: str = "/"
    exchange: Name = "satellites.events"
    queue_prefix: Name = "satellites."
    max_attempts: Annotated[int, Field(ge=1)] = 5
    backoff_initial: Seconds = 0.5
    backoff_max: Seconds = 60.0
    handler_timeout: Seconds = 30.0
    poll_interval: Seconds = 0.5
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 100
    confirm_timeout: Seconds = 10.0
    prefetch: Annotated[int, Field(ge=1, le=65_535)] = 100

    @model_validator(mode="before")
    @classmethod
    def _fields_from_url(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("url") is None:
            return data
        url = data["url"]
        url = url.get_secret_value() if isinstance(url, SecretStr) else url
        if not isinstance(url, str):
            raise ValueError("url must be a string like amqp://user:password@host:5672/")
        given = {key: value for key, value in data.items() if key != "url"}
        return EventsConfig.from_url(url) | given

    def password_value(self) -> str | None:
        """The plain password, for the driver only."""
        return _reveal(self.password)

    def amqp_url(self) -> str:
        """The URL for aio-pika, password included: for the driver, never for a message."""
        login = quote(self.username, safe="")
        password = quote(self.password_value() or "guest", safe="")
        vhost = quote(self.virtual_host, safe="")
        return f"amqp://{login}:{password}@{self.host}:{self.port}/{vhost}"

    @classmethod
    def from_url(cls, url: str) -> dict[str, Any]:
        """The fields an ``amqp://[user:password@]host[:port][/vhost]`` URL sets."""
        parts = _split_url(url, "events", {"amqp", "amqps"})
        fields = _host_and_port(parts) | _credentials(parts)
        vhost = parts.path[1:] if parts.path.startswith("/") else parts.path
        if vhost:
            fields["virtual_host"] = unquote(vhost)
        return fields


class DataLayerConfig(_Section):
    """Everything a ``DataLayer`` needs. Every section has the seed's defaults."""

    redis: RedisConfig = Field(default_factory=RedisConfig)
    postgres: PostgresConfig = Field(default_factory=PostgresConfig)
    elasticsearch: ElasticsearchConfig = Field(default_factory=ElasticsearchConfig)
    faiss: FaissConfig = Field(default_factory=FaissConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    startup_timeout: Seconds = 10.0
    health_timeout: Seconds = 2.0

    @classmethod
    def from_env(cls, env_file: str | Path | None = None) -> DataLayerConfig:
        """Read ``SATELLITES_*`` variables (and an optional dotenv file).

        Raises ``ConfigurationError`` naming every invalid variable; values never appear
        in the message.
        """
        try:
            settings = _EnvSettings(_env_file=env_file)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc, _variable)) from exc
        except SettingsError as exc:
            raise ConfigurationError(_unreadable(exc)) from exc
        return settings.to_config()


_URL_PARSERS: dict[str, Callable[[str], dict[str, Any]]] = {
    "redis": RedisConfig.from_url,
    "postgres": PostgresConfig.from_url,
    "elasticsearch": ElasticsearchConfig.from_url,
}


class _EnvSettings(BaseSettings):
    """The environment's view of ``DataLayerConfig``: sections plus one URL per backend."""

    model_config = SettingsConfigDict(
        env_prefix="SATELLITES_",
        env_nested_delimiter="__",
        extra="ignore",
        hide_input_in_errors=True,
    )

    postgres_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    elasticsearch_url: SecretStr | None = None
    redis: dict[str, Any] = Field(default_factory=dict)
    postgres: dict[str, Any] = Field(default_factory=dict)
    elasticsearch: dict[str, Any] = Field(default_factory=dict)
    faiss: dict[str, Any] = Field(default_factory=dict)
    outbox: dict[str, Any] = Field(default_factory=dict)
    events: dict[str, Any] = Field(default_factory=dict)
    startup_timeout: float | None = None
    health_timeout: float | None = None

    def to_config(self) -> DataLayerConfig:
        """Validate the variables as one ``DataLayerConfig``; errors name the variable."""
        data: dict[str, Any] = {"faiss": self.faiss, "outbox": self.outbox, "events": self.events}
        from_urls: set[tuple[str, str]] = set()
        for section, parse in _URL_PARSERS.items():
            url_fields, given = self._url_fields(section, parse), getattr(self, section)
            data[section] = url_fields | given
            from_urls |= {(section, field) for field in url_fields.keys() - given.keys()}
        data["elasticsearch"] = _hosts_from_env(data["elasticsearch"])
        for name in ("startup_timeout", "health_timeout"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        try:
            # The core validator, not model_validate: that would name fields, not variables.
            config: DataLayerConfig = DataLayerConfig.__pydantic_validator__.validate_python(data)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc, partial(_variable, urls=from_urls))) from exc
        return config

    def _url_fields(self, section: str, parse: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        url: SecretStr | None = getattr(self, f"{section}_url")
        if url is None:
            return {}
        try:
            return parse(url.get_secret_value())
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"invalid configuration: SATELLITES_{section.upper()}_URL: {exc}"
            ) from exc


def _hosts_from_env(section: dict[str, Any]) -> dict[str, Any]:
    """``hosts`` from a variable is a JSON list or comma-separated URLs; make it a list."""
    hosts = section.get("hosts")
    if not isinstance(hosts, str):
        return section
    if not hosts.lstrip().startswith("["):
        return section | {"hosts": _host_list(hosts)}
    try:
        return section | {"hosts": json.loads(hosts)}
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            "invalid configuration: SATELLITES_ELASTICSEARCH__HOSTS: neither a JSON list nor "
            f"comma-separated URLs ({exc.msg} at character {exc.pos})"
        ) from exc


def _host_list(text: str) -> list[str]:
    return [host.strip() for host in text.split(",") if host.strip()]


def _split_url(url: str, backend: str, schemes: set[str]) -> SplitResult:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # Not chained: urllib's message quotes the URL's text, which may be the password.
        raise ConfigurationError(
            f"{backend} URL is malformed: bad port or host "
            "(percent-encode any '/', ':' or '@' in the password)"
        ) from None
    if parts.scheme not in schemes:
        raise ConfigurationError(
            f"{backend} URL must look like {sorted(schemes)[0]}://host[:port]/..., "
            f"got scheme {parts.scheme!r}"
        )
    if not parts.hostname:
        raise ConfigurationError(f"{backend} URL has no host")
    if port == 0:
        raise ConfigurationError(
            f"{backend} URL has port 0; give a port from 1 to 65535, or none for the default"
        )
    return parts


def _host_and_port(parts: SplitResult) -> dict[str, Any]:
    fields: dict[str, Any] = {"host": parts.hostname}
    if parts.port is not None:
        fields["port"] = parts.port
    return fields


def _credentials(parts: SplitResult) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if parts.username:
        fields["username"] = unquote(parts.username)
    if parts.password:
        fields["password"] = unquote(parts.password)
    return fields


def _without_credentials(url: str) -> tuple[str, dict[str, Any]]:
    """``url`` without its ``user:password@`` part, and the credentials it carried."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, {}
    address = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=address)), _credentials(parts)


@contextmanager
def _configuration_errors() -> Iterator[None]:
    try:
        yield
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc, _dotted)) from exc


Location = tuple[int | str, ...]


def _describe(exc: ValidationError, name: Callable[[Location], str]) -> str:
    problems = []
    for error in exc.errors():
        where = name(error["loc"])
        problems.append(f"{where}: {_message(error)}" if where else _message(error))
    return "invalid configuration: " + "; ".join(problems)


def _message(error: ErrorDetails) -> str:
    """Pydantic's message, or a validator's own words without the "Value error, " prefix."""
    if error["type"] == "value_error" and "ctx" in error:
        return str(error["ctx"]["error"])
    return error["msg"]


def _dotted(loc: Location) -> str:
    """``redis.port``, ``elasticsearch.hosts[1]``: where a value sits in the model."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)[1:]


def _variable(loc: Location, urls: Collection[tuple[str, str]] = ()) -> str:
    """The variable that set ``loc``: ``SATELLITES_REDIS__PORT``, or the backend's URL."""
    if len(loc) >= 2 and (loc[0], loc[1]) in urls:
        return f"SATELLITES_{str(loc[0]).upper()}_URL ({loc[1]})"
    names = (f"[{part}]" if isinstance(part, int) else f"__{part.upper()}" for part in loc)
    return "SATELLITES_" + "".join(names)[2:]


_SETTINGS_FIELD = re.compile(r'field "(?P<field>\w+)"')


def _unreadable(exc: SettingsError) -> str:
    """Name the variable pydantic-settings could not decode (it only names the field)."""
    match = _SETTINGS_FIELD.search(str(exc))
    variable = f"SATELLITES_{match['field'].upper()}" if match else "a SATELLITES_ variable"
    cause = exc.__cause__
    if isinstance(cause, json.JSONDecodeError):
        return f"invalid configuration: {variable} is not valid JSON ({cause.msg})"
    return f"invalid configuration: {variable} could not be read ({exc})"


_MASK = "**********"


def redact(text: str, config: DataLayerConfig) -> str:
    """``text`` with every configured password masked where it stands as the password.

    For messages built from driver errors. Only a password in its place is masked: in a
    URL (``scheme://user:SECRET@``, also percent-encoded), after ``password=`` or
    ``password:``, or quoted on its own (``'SECRET'``, ``"SECRET"``). The same letters
    inside a longer word are kept: with the password ``postgres``,
    ``sqlalchemy.dialects.postgresql`` stays readable.
    """
    secrets = [
        section.password_value()
        for section in (config.redis, config.postgres, config.elasticsearch, config.events)
    ]
    secrets += config.faiss.s3_keys() or ()
    for secret in secrets:
        if secret:
            text = _mask(text, secret)
    return text


def _mask(text: str, secret: str) -> str:
    for pattern, replacement in _secret_patterns(secret):
        text = pattern.sub(replacement, text)
    return text


def _secret_patterns(secret: str) -> Sequence[tuple[re.Pattern[str], str]]:
    plain = re.escape(secret)
    in_url = "|".join(dict.fromkeys((plain, re.escape(quote(secret, safe="")))))
    return (
        (re.compile(rf"(://[^\s/@:]*:)(?:{in_url})(@)"), rf"\g<1>{_MASK}\g<2>"),
        (re.compile(rf"((?i:password)\s*[=:]\s*){plain}(?!\w)"), rf"\g<1>{_MASK}"),
        (re.compile(rf"(['\"]){plain}\1"), rf"\g<1>{_MASK}\g<1>"),
    )
