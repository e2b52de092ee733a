"""``FaissConfig``'s S3 snapshot settings: checked, secret, read from the environment."""

from __future__ import annotations

import sys

import pytest

from satellites_repo import ConfigurationError, DataLayerConfig, FaissConfig
from satellites_repo.backends.faiss import FaissBackend
from satellites_repo.config import redact
from satellites_repo.model import Registry


def test_defaults_keep_snapshots_local() -> None:
    config = FaissConfig()
    assert config.snapshot_url is None
    assert config.snapshot_interval is None
    assert config.snapshot_retention == 3
    assert config.s3_keys() is None


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"snapshot_url": "http://bucket/x"}, "snapshot_url: must be an s3://bucket/prefix URL"),
        ({"snapshot_url": "s3://AB/x"}, "snapshot_url: needs a bucket name"),
        ({"snapshot_url": "s3://key:secret@bucket/x"}, "never in the URL"),
        ({"snapshot_url": "s3://bucket/x?a=1"}, "query or fragment"),
        ({"s3_access_key_id": "key"}, "s3_access_key_id is set alone"),
        ({"s3_secret_access_key": "secret"}, "s3_secret_access_key is set alone"),
        ({"s3_endpoint_url": "ftp://host"}, "s3_endpoint_url"),
        ({"snapshot_retention": 0}, "snapshot_retention"),
        ({"snapshot_interval": float("inf")}, "snapshot_interval"),
    ],
)
def test_bad_settings_name_the_field(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem.replace("?", "\\?")):
        FaissConfig(**fields)


def test_the_key_pair_is_secret_and_redacted() -> None:
    faiss = FaissConfig(
        snapshot_url="s3://bucket/prefix",
        s3_access_key_id="AKIAEXAMPLE",
        s3_secret_access_key="wJalrXUtnFEMI",
    )
    assert "AKIAEXAMPLE" not in repr(faiss)
    assert "wJalrXUtnFEMI" not in repr(faiss)
    assert faiss.s3_keys() == ("AKIAEXAMPLE", "wJalrXUtnFEMI")
    config = DataLayerConfig(faiss=faiss)
    assert "wJalrXUtnFEMI" not in redact("signing with 'wJalrXUtnFEMI' failed", config)


def test_the_environment_sets_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATELLITES_FAISS__SNAPSHOT_URL", "s3://bucket/prefix")
    monkeypatch.setenv("SATELLITES_FAISS__S3_ENDPOINT_URL", "http://127.0.0.1:9400")
    monkeypatch.setenv("SATELLITES_FAISS__SNAPSHOT_INTERVAL", "300")
    faiss = DataLayerConfig.from_env().faiss
    assert (faiss.snapshot_url, faiss.s3_endpoint_url) == (
        "s3://bucket/prefix",
        "http://127.0.0.1:9400",
    )
    assert faiss.snapshot_interval == 300


def test_without_obstore_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "obstore", None)
    monkeypatch.delitem(sys.modules, "satellites_repo.backends.s3_snapshots", raising=False)
    config = DataLayerConfig(faiss=FaissConfig(snapshot_url="s3://bucket/prefix"))
    with pytest.raises(ImportError, match=r"satellites-repo\[s3\]"):
        FaissBackend(config.faiss, Registry([]), 4, config.postgres)
