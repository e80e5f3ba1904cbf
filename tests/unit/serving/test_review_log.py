"""The review log is append-only in the file itself, whatever opens it."""

import sqlite3

import pytest

from serving.review_log import ReviewLog


def test_review_log_appends_and_refuses_updates_and_deletes(tmp_path):
    log = ReviewLog(tmp_path / "reviews.db")
    first = log.append("C1", "fraud", "alice", 1000, "review", None, False, "")
    second = log.append("C1", "legit", "lead", 2000, "review", "fraud", True, "documents checked")
    assert second > first
    assert [(e["actor"], e["outcome"], e["override"]) for e in log.history("C1")] == [
        ("alice", "fraud", False), ("lead", "legit", True)]
    log.close()
    with sqlite3.connect(tmp_path / "reviews.db") as db:
        for stmt in ("DELETE FROM review", "UPDATE review SET outcome = 'legit'"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(stmt)
    assert len(ReviewLog(tmp_path / "reviews.db").history("C1")) == 2
