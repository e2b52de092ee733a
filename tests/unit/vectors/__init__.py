"""Unit tests of ``satellites_repo.vectors`` (a package so its module names stay unique)."""
