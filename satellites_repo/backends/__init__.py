"""Projection backends, one module (or package) each, every one a ``types.Backend``.

Adding a backend is one new module here plus one line in ``bootstrap.BACKENDS``.
"""
