"""Driver errors become library errors here, once, around every repository and unit-of-work
method and every ``data.operations`` entry point (the outbox store, relay and subscription
registry included) (advanced-alchemy's ``wrap_sqlalchemy_exception`` idea).

    StaleDataError                        -> ConcurrencyError
    IntegrityError (unique, FK, check...) -> ConflictError naming the table and constraint
    a bad value refused by a column type  -> ValueError naming it
    connection refused, reset, timed out  -> UnavailableError("postgres", ...)

Always ``raise ... from exc``, so the driver's error stays visible as the cause. Library
errors raised inside pass through untouched.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.orm.exc import StaleDataError

from satellites_repo.errors import (
    ConcurrencyError,
    ConflictError,
    SatellitesError,
    UnavailableError,
)

__all__ = ["translated", "translating"]

P = ParamSpec("P")
R = TypeVar("R")

_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
)


@contextmanager
def translating(entity: str) -> Iterator[None]:
    """Translate what the block raises; ``entity`` names the model in messages."""
    try:
        yield
    except Exception as exc:
        library_error = _translation(entity, exc)
        if library_error is None:
            raise
        raise library_error from exc


def translated(
    method: Callable[Concatenate[Any, P], Awaitable[R]],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]:
    """Decorate an async method of an object with an ``entity_name``: ``translating`` it
    (inlined: the read path pays no context manager for the errors it never raises)."""

    @functools.wraps(method)
    async def wrapper(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except Exception as exc:
            library_error = _translation(self.entity_name, exc)
            if library_error is None:
                raise
            raise library_error from exc

    return wrapper


def _translation(entity: str, exc: Exception) -> Exception | None:
    """The library error for a driver error, or ``None`` to let ``exc`` go as it is."""
    if isinstance(exc, SatellitesError):
        return None
    if isinstance(exc, StaleDataError):
        return ConcurrencyError(
            f"{entity}: {exc} Another transaction changed or deleted the row since it was "
            "read; load it again and retry."
        )
    if isinstance(exc, IntegrityError):
        return _conflict(entity, exc)
    if isinstance(exc, OperationalError | InterfaceError):
        return UnavailableError("postgres", f"{entity}: {_reason(exc)}")
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(_cause(exc), _UNREACHABLE):
            return UnavailableError("postgres", f"{entity}: {_reason(exc)}")
        return None
    if isinstance(exc, StatementError):
        return ValueError(f"{entity}: {exc.orig}") if isinstance(exc.orig, ValueError) else None
    if isinstance(exc, _UNREACHABLE):
        return UnavailableError("postgres", f"{entity}: {type(exc).__name__}: {exc}")
    return None


def _cause(exc: DBAPIError) -> BaseException | None:
    """The asyncpg error behind SQLAlchemy's DBAPI wrapper."""
    orig = exc.orig
    return orig.__cause__ if orig is not None and orig.__cause__ is not None else orig


def _reason(exc: DBAPIError) -> str:
    cause = _cause(exc)
    return f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)


def _conflict(entity: str, exc: IntegrityError) -> ConflictError:
    cause = _cause(exc)
    table = getattr(cause, "table_name", None)
    constraint = getattr(cause, "constraint_name", None)
    detail = getattr(cause, "detail", None) or ""
    message = getattr(cause, "message", None) or str(cause)
    where = f"table {table!r}" if table else "the table"
    named = f", constraint {constraint!r}" if constraint else ""
    return ConflictError(
        f"{entity}: Postgres refused the write ({where}{named}): {message}"
        + (f" ({detail})" if detail else ""),
        table=table,
        constraint=constraint,
    )
