"""A graph file written before the per-type count columns opens and reads the same."""

from __future__ import annotations

import json
import sqlite3

from fraudgraph.graph import open_graph

OLD_SCHEMA = """
CREATE TABLE customer (id TEXT PRIMARY KEY, props TEXT NOT NULL DEFAULT '{}') WITHOUT ROWID;
CREATE TABLE identifier (kind TEXT NOT NULL, value_hash TEXT NOT NULL, PRIMARY KEY (kind, value_hash)) WITHOUT ROWID;
CREATE TABLE link (
    customer_id TEXT NOT NULL, kind TEXT NOT NULL, value_hash TEXT NOT NULL, first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL, event_count INTEGER NOT NULL, counts TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (customer_id, kind, value_hash)) WITHOUT ROWID;
CREATE INDEX link_by_identifier ON link (kind, value_hash, customer_id);
"""


def test_json_counts_move_to_columns(tmp_path, settings):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO customer VALUES ('c1', '{}')")
    db.execute("INSERT INTO identifier VALUES ('device', 'd1')")
    db.execute("INSERT INTO link VALUES ('c1', 'device', 'd1', 10, 20, 5, ?)",
               (json.dumps({"signup": 1, "login": 3, "payment": 1}),))
    db.commit()
    db.close()
    with open_graph(f"sqlite:///{path}", settings) as store:
        (row,) = store.links_frame().to_dict("records")
        assert (row["count_signup"], row["count_login"], row["count_payment"], row["count_add_card"]) == (1, 3, 1, 0)
        assert "count_appeal" not in row  # label events are never link counts
        assert row["event_count"] == 5
        (summary,) = store._link_summary(["c1"]).to_dict("records")  # the summary table was built too
        assert (summary["identifiers_device"], summary["events"], summary["count_login"]) == (1, 5, 3)
        nb = store.neighbourhoods(["c1"])["c1"]
        assert nb.identifiers[0].link["count_login"] == 3 and nb.identifiers[0].degree == 1
        # and the identifier summary table, which identifier_stats reads
        kept = sqlite3.connect(path).execute("SELECT * FROM identifier_link_summary").fetchall()
        assert kept == [("device", "d1", 1, 10, 10, 5)]
        assert store._identifier_stats([("device", "d1")]).values.tolist() == [["device", "d1", 1, 10, 10, 5]]
    # opening again does not migrate twice, and the old index is gone
    with open_graph(f"sqlite:///{path}", settings) as store:
        assert store.links_frame()["count_login"].tolist() == [3]
    names = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "link_by_identifier" not in names and "link_by_identifier_stats" in names
