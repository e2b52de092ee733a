"""The package root re-exports exactly its public names."""

from __future__ import annotations

import satellites_repo

SEED_API = {
    "DataLayer",
    "DataLayerConfig",
    "RedisConfig",
    "PostgresConfig",
    "ElasticsearchConfig",
    "FaissConfig",
    "DataEvent",
    "EventHandler",
    "EventBus",
    "InProcessEventBus",
    "Health",
    "VectorIndex",
    "VectorMatch",
}
ERRORS = {
    "SatellitesError",
    "ConfigurationError",
    "StartupError",
    "NotFoundError",
    "ConcurrencyError",
    "ProjectionError",
}


def test_all_lists_every_public_member() -> None:
    public = {name for name in vars(satellites_repo) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(satellites_repo, name)).__name__ == "module"}
    assert set(satellites_repo.__all__) == public - modules - {"annotations"}


def test_seed_api_and_errors_are_exported() -> None:
    assert set(satellites_repo.__all__) >= SEED_API | ERRORS


def test_errors_share_one_root() -> None:
    for name in ERRORS:
        assert issubclass(getattr(satellites_repo, name), satellites_repo.SatellitesError)
