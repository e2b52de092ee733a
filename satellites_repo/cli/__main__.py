"""``python -m satellites_repo.cli``: the same as the ``satellites`` command."""

from __future__ import annotations

from satellites_repo.cli import main

main()
