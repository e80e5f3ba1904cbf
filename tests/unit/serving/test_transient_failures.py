"""Which consumer failures are retried by a restart (transient) and which send the input to the dead letters."""

from __future__ import annotations

import sqlite3

from fraudgraph.graph.elements import GraphStoreError
from serving.consumer.steps import is_transient


def _raised_from(exc: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise exc from inner
    except BaseException as outer:
        return outer


def test_an_unreachable_store_or_locked_database_is_transient():
    assert is_transient(ConnectionRefusedError("connection refused"))
    assert is_transient(TimeoutError())
    assert is_transient(sqlite3.OperationalError("database is locked"))


def test_a_store_error_raised_from_a_lost_connection_is_transient():
    err = _raised_from(GraphStoreError("mergeV failed after 3 attempts"), ConnectionResetError("reset by peer"))
    assert is_transient(err)


def test_bad_input_and_store_errors_of_their_own_are_not_transient():
    assert not is_transient(ValueError("customer_id: empty"))
    assert not is_transient(sqlite3.OperationalError("no such column: x"))
    assert not is_transient(GraphStoreError("vertex id contains '-'"))
    assert not is_transient(_raised_from(GraphStoreError("refused"), ValueError("bad property")))
