"""One contract suite for every graph backend (embedded SQLite and a real Gremlin Server)."""

from __future__ import annotations

import contextlib

import networkx as nx
import pandas as pd
import pytest

from fraudgraph.graph import CustomerUpsert, IdentityLink, InvalidElementError, customer_properties
from fraudgraph.graph.elements import summarise_links
from fraudgraph.graph.gremlin import GremlinIdentityGraph
from fraudgraph.graph.snapshot import export_graph, normalise_customers, normalise_links

from graph_helpers import expected_identifier_stats, small_world
from testing_support import frames_to_elements, read_snapshot


@pytest.fixture(params=["sqlite", pytest.param("gremlin", marks=[pytest.mark.slow, pytest.mark.gremlin]),
                        pytest.param("gremlin_set", marks=[pytest.mark.slow, pytest.mark.gremlin]),
                        pytest.param("janusgraph_cql", marks=[pytest.mark.slow, pytest.mark.gremlin])])
def store(request, tmp_path, settings):
    """An empty identity graph on each backend, JanusGraph on the real Cassandra (its production storage)."""
    from conftest import make_store

    s = make_store(request.param, tmp_path, settings, request)
    yield s
    s.close()


def nx_reference(links):
    g = nx.Graph()
    for l in links:
        g.add_edge(("c", l.customer_id), ("i", l.kind, l.value_hash))
    return g


def test_upsert_and_read_back(store):
    cust, links = small_world()
    store.upsert_customers(cust)
    store.upsert_links(links)
    got = customer_properties(store, "c007")
    assert got == {"signup_ts": 1_700_000_007_000, "lifetime_value": cust[7].properties["lifetime_value"],
                   "country": cust[7].properties["country"], "vip": True}
    assert customer_properties(store, "nobody") is None
    ident = store.identity("c000")
    want = sorted((l for l in links if l.customer_id == "c000"), key=lambda l: (l.kind, l.value_hash))
    assert [(i.kind, i.value_hash) for i in ident] == [(l.kind, l.value_hash) for l in want]
    assert [i.properties for i in ident] == [l.properties() for l in want]
    hub = next(i for i in ident if i.kind == "ip")
    assert hub.degree == len([l for l in links if l.value_hash == "hub"])


def test_links_of_keys_are_exactly_the_asked_keys_in_the_graph(store):
    """What the live consumer reads before a link's first live event: the asked links that exist, with
    their properties as ``links_of`` gives them; never another link of the same customers or
    identifiers, nothing for keys not in the graph."""
    cust, links = small_world()
    store.upsert_customers(cust)
    store.upsert_links(links)
    keys = [("c000", "ip", "hub"), ("c003", "ip", "hub"), ("c001", "ip", "hub"),  # c001 is not on the hub
            ("c007", links[21].kind, links[21].value_hash), ("nobody", "ip", "hub"), ("c000", "email", "e999")]
    present = {(l.customer_id, l.kind, l.value_hash) for l in links}
    got = store.links_of(keys=keys)
    cols = ["customer_id", "kind", "value_hash"]
    assert sorted(map(tuple, got[cols].to_numpy().tolist())) == sorted(k for k in keys if k in present)
    assert len(got) >= 2
    full = store.links_of(sorted({k[0] for k in keys}))
    want = full.merge(got[cols], on=cols).sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(got.sort_values(cols).reset_index(drop=True)[list(want.columns)].astype(str),
                                  want.astype(str))
    assert store.links_of(keys=[("nobody", "ip", "hub")]).empty


def test_same_batch_twice_is_idempotent(store):
    cust, links = small_world()
    store.upsert_customers(cust)
    store.upsert_links(links)
    stats1, cframe1, lframe1 = store.stats(), store.customers_frame(), store.links_frame()
    store.upsert_customers(cust)
    store.upsert_links(links)
    assert store.stats() == stats1
    pd.testing.assert_frame_equal(normalise_customers(store.customers_frame()), normalise_customers(cframe1))
    pd.testing.assert_frame_equal(normalise_links(store.links_frame()), normalise_links(lframe1))
    n_ident = len({(l.kind, l.value_hash) for l in links})
    assert sum(stats1["vertices"].values()) == len(cust) + n_ident
    assert sum(stats1["edges"].values()) == len(links)
    assert set(stats1["vertices"]) == {"customer", "device", "ip", "email", "card", "subnet"}


@pytest.mark.parametrize("summaries", [True, False], ids=["with-summaries", "bulk"])
def test_link_merge_semantics(store, summaries):
    # the Gremlin store merges first and last seen on the client from the values it reads just before
    # (summaries kept), and on the server in a bulk load: both give the same rule
    for link in (
        IdentityLink("a", "device", "d1", 1000, 2000, 3, {"login": 3}),
        IdentityLink("a", "device", "d1", 1500, 1800, 5, {"login": 4, "payment": 1}),
        IdentityLink("a", "device", "d1", 500, 2500, 6, {"signup": 1, "login": 5}),
    ):
        with store.summaries.deferred() if not summaries else contextlib.nullcontext():
            store.upsert_links([link])
    (ident,) = store.identity("a")
    assert ident.properties["first_seen"] == 500
    assert ident.properties["last_seen"] == 2500
    assert ident.properties["event_count"] == 6
    assert ident.properties["count_login"] == 5
    assert ident.properties["count_signup"] == 1
    assert ident.properties["count_payment"] == 0  # replaced by the caller's absolute counts


def test_customer_properties_merge_and_remove(store):
    store.upsert_customers([CustomerUpsert("x", {"a": 1, "b": "two"})])
    store.upsert_customers(CustomerUpsert.many({"x": {"b": None, "score": 0.25, "decision": "review"}}))
    assert customer_properties(store, "x") == {"a": 1, "score": 0.25, "decision": "review"}


@pytest.mark.parametrize("cap", [3, 1000])
def test_neighbourhood_matches_networkx(store, cap):
    cust, links = small_world()
    store.upsert_customers(cust)
    store.upsert_links(links)
    ref = nx_reference(links)
    for cid in ["c000", "c001", "c013", "c042"]:
        nb = store.neighbourhoods([cid], fanout_cap=cap)[cid]
        want_idents = sorted(n for n in ref.neighbors(("c", cid)))
        assert [("i", s.kind, s.value_hash) for s in nb.identifiers] == want_idents
        for s in nb.identifiers:
            node = ("i", s.kind, s.value_hash)
            others = sorted(c[1] for c in ref.neighbors(node) if c[1] != cid)
            assert s.degree == ref.degree(node)  # true degree, never capped
            assert list(s.customers) == others[:cap]
            assert s.truncated == (len(others) > cap)
        # uncapped, the union equals networkx's 2-hop customer set
        if cap == 1000:
            two_hop = {n[1] for i in ref.neighbors(("c", cid)) for n in ref.neighbors(i)} - {cid}
            assert nb.customers == two_hop


def test_fanout_cap_reports_true_degree(store):
    links = [IdentityLink(f"u{i:04d}", "ip", "publicwifi", 1, 2, 1, {"login": 1}) for i in range(250)]
    store.upsert_links(links)
    nb = store.neighbourhoods(["u0100"], fanout_cap=10)["u0100"]
    (hub,) = nb.identifiers
    assert hub.degree == 250
    assert len(hub.customers) == 10 and hub.truncated
    assert "u0100" not in hub.customers
    assert list(hub.customers) == sorted(f"u{i:04d}" for i in range(250) if i != 100)[:10]


def test_customers_of_with_chosen_properties(store):
    cust, links = small_world()
    store.upsert_customers(cust)
    full = store.customers_of(["c007", "c008", "nobody"]).set_index("customer_id")
    assert list(full.index) == ["c007", "c008"] and full.loc["c007", "country"] == cust[7].properties["country"]
    some = store.customers_of(["c008", "c007", "nobody"], properties=["lifetime_value", "vip", "not_there"])
    assert list(some.columns) == ["customer_id", "lifetime_value", "vip", "not_there"]
    assert list(some["customer_id"]) == ["c007", "c008"]
    assert some["lifetime_value"].tolist() == [cust[7].properties["lifetime_value"], cust[8].properties["lifetime_value"]]
    assert [bool(v) for v in some["vip"]] == [True, False]
    assert some["not_there"].isna().all()


def test_link_summary_and_identifier_links_match_the_links_frame(store):
    """The two reads online scoring is built on, against pandas over the store's own links frame."""

    cust, links = small_world()
    store.upsert_customers(cust)
    store.upsert_links(links)
    frame = store.links_frame()
    as_of = 1_700_000_100_000  # most links first seen later: they must not count
    ids = ["c000", "c003", "c017", "c042", "nobody"]
    got = store._link_summary(ids, as_of).set_index("customer_id")
    want = summarise_links(frame.loc[frame["customer_id"].isin(ids)], as_of).set_index("customer_id")
    assert len(want) and len(want) < 4  # the cut-off drops someone
    pd.testing.assert_frame_equal(got.astype("int64"), want.astype("int64"), check_like=True)
    # every link visible (the live case; SQLite answers from its kept summary), and after a link changes
    store.upsert_links([IdentityLink("c003", "device", "brandnew", 1_700_000_000_500, 1_700_000_000_900, 4,
                                     {"login": 3, "add_card": 1})])
    frame = store.links_frame()
    got = store._link_summary(ids).set_index("customer_id")
    want = summarise_links(frame.loc[frame["customer_id"].isin(ids)]).set_index("customer_id")
    assert list(got.index) == ["c000", "c003", "c017", "c042"]
    pd.testing.assert_frame_equal(got.astype("int64"), want.astype("int64"), check_like=True)

    idents = [("ip", "hub"), ("device", "d1"), ("email", "e5"), ("card", "nothing")]
    for cut in (as_of, None):  # some links hidden by as-of; all visible (the live case)
        got = store._identifier_links(idents, 4, cut)
        visible = frame.loc[pd.to_numeric(frame["first_seen"]) <= (cut or 2**62)]
        for kind, h in idents:
            mine = visible.loc[(visible["kind"] == kind) & (visible["value_hash"] == h)].sort_values("customer_id")
            part = got.loc[(got["kind"] == kind) & (got["value_hash"] == h)].sort_values("customer_id")
            assert list(part["customer_id"]) == list(mine["customer_id"])[:4]
            pd.testing.assert_frame_equal(part.reset_index(drop=True).astype(str),
                                          mine.head(4)[list(part.columns)].reset_index(drop=True).astype(str))


@pytest.mark.parametrize("as_of", [1_700_000_300_000, None])
def test_identifier_stats_match_the_links_frame(store, as_of):
    cust, links = small_world()
    store.upsert_customers(cust)
    store.upsert_links(links)
    frame = store.links_frame()
    idents = [("ip", "hub"), ("device", "d1"), ("device", "d7"), ("email", "e5"), ("card", "nothing")]
    got = store._identifier_stats(idents, as_of).astype({"degree": "int64", "first_seen_min": "int64",
                                                         "first_seen_max": "int64", "events": "int64"})
    want = expected_identifier_stats(frame, as_of)
    want = want.loc[want.set_index(["kind", "value_hash"]).index.isin(idents)].reset_index(drop=True)
    assert len(want) >= 3
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want[list(got.columns)])


def test_export_round_trips(store, store_factory, tmp_path):
    cust, links = small_world()
    store.upsert_customers(cust)
    store.upsert_links(links)
    stats = store.stats()
    export_graph(store, tmp_path / "snap")
    customers_df, links_df = read_snapshot(tmp_path / "snap")
    assert len(customers_df) == len(cust) and len(links_df) == len(links)
    other = store_factory("copy")
    c2, l2 = frames_to_elements(customers_df, links_df)
    other.upsert_customers(c2)
    other.upsert_links(l2)
    assert other.stats() == stats
    export_graph(other, tmp_path / "snap2")
    a, b = read_snapshot(tmp_path / "snap"), read_snapshot(tmp_path / "snap2")
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])


def test_invalid_element_rejects_whole_batch(store):
    good = [CustomerUpsert(f"g{i}", {"v": i}) for i in range(5)]
    bad = good[:3] + [CustomerUpsert("broken", {"tags": ["a", "b"]})] + good[3:]
    with pytest.raises(InvalidElementError) as err:
        store.upsert_customers(bad)
    assert err.value.index == 3 and "broken" in str(err.value) and "tags" in str(err.value)
    assert store.stats()["vertices"]["customer"] == 0  # nothing half-written

    links = [IdentityLink("a", "device", "d", 1, 2, 1), IdentityLink("b", "phone", "p", 1, 2, 1)]
    with pytest.raises(InvalidElementError, match="unknown identifier kind 'phone'"):
        store.upsert_links(links)
    with pytest.raises(InvalidElementError, match="first_seen is after last_seen"):
        store.upsert_links([IdentityLink("a", "device", "d", 5, 2, 1)])
    assert sum(store.stats()["edges"].values()) == 0


@pytest.mark.parametrize("as_of", [1_700_000_300_000, None])
def test_combined_scoring_reads_equal_the_separate_ones(store, as_of):
    """identifier_inputs and scoring_customers (one read where a store can) answer as their parts do."""
    cust, links = small_world()
    store.upsert_customers(cust)
    store.upsert_links(links)
    idents = [("ip", "hub"), ("device", "d1"), ("email", "e5"), ("card", "nothing")]
    got_links, got_stats = store.identifier_inputs(idents, 3, as_of)
    pd.testing.assert_frame_equal(got_links, store._identifier_links(idents, 3, as_of))
    pd.testing.assert_frame_equal(got_stats, store._identifier_stats(idents, as_of))
    assert len(got_links) and len(got_stats)
    members, linked = ["c000", "c003", "c017", "nobody"], ["c003", "c042"]
    got_customers, got_summary = store._scoring_customers(members, ["signup_ts", "lifetime_value"], linked, as_of)
    pd.testing.assert_frame_equal(got_customers, store.customers_of(members, ["signup_ts", "lifetime_value"]))
    pd.testing.assert_frame_equal(got_summary, store._link_summary(linked, as_of))
    assert list(got_customers["customer_id"]) == ["c000", "c003", "c017"]


@pytest.mark.parametrize("as_of", [1_700_000_000_000, 1_700_000_300_000, 1_700_000_700_000, 2_000_000_000_000])
@pytest.mark.parametrize("cap", [1, 3, 50])
def test_the_sqlite_scoring_read_equals_the_generic_one(tmp_path, settings, as_of, cap):
    """SQLite's one-transaction scoring read returns what the interface's generic composition of reads
    returns, frame for frame: live (everything visible), part of the links first seen after as-of (an
    identifier's lowest-id links read again), summaries newer than as-of, caps that cut every identifier
    or none, blocked customers, an unknown id."""
    from fraudgraph.graph import open_graph
    from fraudgraph.graph.base import IdentityGraph

    store = open_graph(f"sqlite:///{tmp_path / 'graph.db'}", settings)
    cust, links = small_world(customers=80)
    store.upsert_customers(cust)
    store.upsert_links(links)
    store.upsert_customers([CustomerUpsert("c003", {"blocked_at": 1_700_000_200_000}),
                            CustomerUpsert("c006", {"blocked_at": 1, "unblocked_at": 2, "clean_label": 0})])
    batches = [["c000"], ["c003", "c006", "c009"], ["c050", "nobody", "c001", "c050"], [f"c{i:03d}" for i in range(80)]]
    for ids in batches:
        got = store.scoring_inputs(ids, as_of, cap)
        want = IdentityGraph.scoring_inputs(store, ids, as_of, cap)
        for name in ("customers", "links", "identifier_stats", "customer_summary"):
            pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name), obj=f"{ids[:3]} {name}")
        assert len(got.links) and len(got.customers)
    store.close()


def test_the_graph_keeps_one_id(store, settings):
    """What a consumer's ledger is bound to: made once, the same for every connection that opens the
    graph, and not an element any read or count sees."""
    from fraudgraph.graph import open_graph

    graph_id = store.graph_id
    assert graph_id and store.graph_id == graph_id
    with open_graph(store.uri, settings) as again:
        assert again.graph_id == graph_id
    assert set(store.stats()["vertices"]) <= {"customer", "device", "ip", "email", "card", "subnet"}


def test_property_updates_replace_the_value_whatever_the_default_cardinality(store):
    """Neptune's default vertex-property cardinality is set: a write that does not say single adds a value.
    Customer properties, summaries and identifier properties are written single on every backend."""
    link = IdentityLink("C1", "device", "d" * 32, 1000, 2000, 1, {"login": 1})
    store.upsert_links([link])
    for value in (10.0, 20.0, 30.0):
        store.upsert_customers([CustomerUpsert("C1", {"lifetime_value": value, "signup_ts": 5})])
        store.upsert_customers(CustomerUpsert.many({"C1": {"decision": f"d{value:.0f}"}}))
    store.upsert_links([IdentityLink("C1", "device", "d" * 32, 1000, 3000, 2, {"login": 2})])
    props = customer_properties(store, "C1")
    assert props["lifetime_value"] == 30.0 and props["decision"] == "d30" and props["signup_ts"] == 5
    if isinstance(store, GremlinIdentityGraph):  # every vertex property holds exactly one value
        counts = store.client.run("test", lambda g: g.V().properties().key().group_count().next())
        from gremlin_python.process.graph_traversal import __

        per_vertex = store.client.run("test", lambda g: g.V().properties().group_count().by(
            __.project("v", "k").by(__.element().id_()).by(__.key())).next())
        assert all(n == 1 for n in per_vertex.values()), per_vertex
        assert counts


def test_janusgraph_refuses_a_reserved_id_naming_the_element(store):
    """JanusGraph reserves '-' inside custom string vertex ids (a UUID customer id has them): the batch is
    refused before anything is written, naming the element; other engines take such ids."""
    from fraudgraph.graph import InvalidElementError

    link = IdentityLink("3f2b-uuid-like", "device", "d" * 32, 1, 2, 1, {"login": 1})
    if isinstance(store, GremlinIdentityGraph) and store.client.edge_ids == "engine":
        with pytest.raises(InvalidElementError, match="reserves '-'"):
            store.upsert_links([link])
        assert store.stats()["edges"]["has_device"] == 0
    else:
        store.upsert_links([link])
        assert store.stats()["edges"]["has_device"] == 1


def test_customer_properties_written_with_the_links_are_read_back_everywhere(store):
    """``upsert_links(customers=...)`` (the live consumer's one write per step): properties kept by the
    summaries, others and removals all land, and the reads served from summaries answer with the new
    values and the new links; a customer that is not one of the links' is refused, naming it."""
    cust, links = small_world()
    store.upsert_customers(cust)
    store.upsert_links(links[::2])
    store.customers_of(["c001", "c003"], ["lifetime_value"])  # summaries exist before the write
    mine = [l for l in links if l.customer_id < "c010"]
    customers = [CustomerUpsert("c001", {"lifetime_value": 999.5, "country": "QA"}),  # kept by summaries, and not
                 CustomerUpsert("c002", {"risk_note": "x"}),  # kept by no summary
                 CustomerUpsert("c003", {"vip": None, "blocked_at": 1_700_000_500_000})]  # a removal
    store.upsert_links(mine, customers=customers)
    assert customer_properties(store, "c001")["lifetime_value"] == 999.5 and customer_properties(store, "c001")["country"] == "QA"
    assert customer_properties(store, "c002")["risk_note"] == "x"
    assert "vip" not in customer_properties(store, "c003") and customer_properties(store, "c003")["blocked_at"] == 1_700_000_500_000
    ids = sorted({l.customer_id for l in mine})
    got = store.customers_of(ids, ["lifetime_value", "blocked_at"]).set_index("customer_id")
    assert got.loc["c001", "lifetime_value"] == 999.5 and got.loc["c003", "blocked_at"] == 1_700_000_500_000
    assert got.loc["c002", "lifetime_value"] == cust[2].properties["lifetime_value"]
    frame = store.links_frame()
    want = summarise_links(frame.loc[frame["customer_id"].isin(ids)]).set_index("customer_id").astype("int64")
    pd.testing.assert_frame_equal(store._link_summary(ids).set_index("customer_id").astype("int64"), want,
                                  check_like=True)
    assert len(frame) == len(links[::2]) + len([l for l in links[1::2] if l.customer_id < "c010"])
    with pytest.raises(InvalidElementError, match="c059.*not a customer of the links"):
        store.upsert_links(mine, customers=[CustomerUpsert("c059", {"vip": True})])
