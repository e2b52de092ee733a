"""The ``satellites`` command line: ``health``, ``demo`` and the operational subcommands."""

from __future__ import annotations

from satellites_repo.cli.app import app, main

__all__ = ["app", "main"]
