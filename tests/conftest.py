"""Shared by every test. Isolation fixtures come from the library's own pytest plugin
(``satellites_repo.testing``, registered through the ``pytest11`` entry point)."""
