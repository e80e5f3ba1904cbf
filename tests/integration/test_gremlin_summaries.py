"""The Gremlin store's materialised link summaries: served only when current, exact when served."""

from __future__ import annotations

import logging
import threading

import pandas as pd
import pytest

from fraudgraph.graph import CustomerUpsert, IdentityLink, customer_properties, identifier_id, open_graph
from fraudgraph.graph.elements import summarise_links
from fraudgraph.graph.gremlin import SUMMARY

from graph_helpers import expected_identifier_stats, small_world

pytestmark = [pytest.mark.slow, pytest.mark.gremlin]


@pytest.fixture(params=["tinkergraph", "janusgraph"])
def engine(request, settings):
    """``(url, settings)`` of a real Gremlin engine: TinkerGraph, or JanusGraph with worker threads."""
    from conftest import janusgraph_settings

    if request.param == "janusgraph":
        return request.getfixturevalue("janusgraph_server").url, janusgraph_settings(settings)
    return request.getfixturevalue("gremlin_server").url, settings


@pytest.fixture
def gstore(engine):
    url, settings = engine
    with open_graph(url, settings) as s:
        s.clear()
        yield s
        s.clear()


def current(store, customer_ids=(), identifiers=()):
    """Which of these vertices have a summary a reader would use."""
    vids = [f"customer:{c}" for c in customer_ids] + [identifier_id(k, h) for k, h in identifiers]
    found = store.summary_cache.read(vids)
    return {v: v in found for v in vids}


def assert_reads_match_links(store, customer_ids, identifiers, cap=4):
    frame = store.links_frame()
    got = store._link_summary(customer_ids).set_index("customer_id").astype("int64")
    want = summarise_links(frame.loc[frame["customer_id"].isin(customer_ids)]).set_index("customer_id")
    pd.testing.assert_frame_equal(got, want.astype("int64"), check_like=True)
    stats = store._identifier_stats(identifiers).astype({c: "int64" for c in ("degree", "first_seen_min",
                                                                                "first_seen_max", "events")})
    ref = expected_identifier_stats(frame, None)
    ref = ref.loc[ref.set_index(["kind", "value_hash"]).index.isin(identifiers)].reset_index(drop=True)
    pd.testing.assert_frame_equal(stats.reset_index(drop=True), ref[list(stats.columns)])
    links = store._identifier_links(identifiers, cap)
    for kind, h in identifiers:
        mine = frame.loc[(frame["kind"] == kind) & (frame["value_hash"] == h)].sort_values("customer_id").head(cap)
        part = links.loc[(links["kind"] == kind) & (links["value_hash"] == h)].sort_values("customer_id")
        pd.testing.assert_frame_equal(part.reset_index(drop=True).astype("int64", errors="ignore").astype(str),
                                      mine[list(part.columns)].reset_index(drop=True).astype(str))


def test_writes_leave_current_summaries_that_reads_serve(gstore):
    cust, links = small_world()
    gstore.upsert_customers(cust)
    gstore.upsert_links(links)
    customers = ["c000", "c003", "c017", "c042"]
    identifiers = [("ip", "hub"), ("device", "d1"), ("email", "e5")]
    assert all(current(gstore, customers, identifiers).values())
    assert customer_properties(gstore, "c000").keys() == {"signup_ts", "lifetime_value", "country", "vip"}  # not exposed
    assert_reads_match_links(gstore, customers, identifiers)
    hub = gstore.neighbourhoods(["c000"], fanout_cap=3)["c000"].identifiers
    assert [i.degree for i in hub if i.kind == "ip"] == [len([l for l in links if l.value_hash == "hub"])]


def test_a_stale_summary_is_never_served(gstore):
    cust, links = small_world()
    gstore.upsert_customers(cust)
    gstore.upsert_links(links)
    old = next(l for l in links if l.value_hash == "hub")
    # a bulk write that defers its refresh: only counts change (no new edge for a live count to catch)
    changed = IdentityLink(old.customer_id, "ip", "hub", old.first_seen - 5_000, old.last_seen, old.event_count + 40,
                           {"login": old.event_count + 39, "signup": 1})
    with gstore.summaries.deferred():
        gstore.upsert_links([changed])
    assert current(gstore, [old.customer_id], [("ip", "hub")]) == {f"customer:{old.customer_id}": False,
                                                                   "ip:hub": False}
    assert_reads_match_links(gstore, [old.customer_id, "c003"], [("ip", "hub"), ("device", "d1")])
    gstore.summaries.refresh([old.customer_id], [("ip", "hub")])
    assert all(current(gstore, [old.customer_id], [("ip", "hub")]).values())
    assert_reads_match_links(gstore, [old.customer_id, "c003"], [("ip", "hub"), ("device", "d1")])


def test_summaries_carry_the_scoring_properties(gstore):
    cust, links = small_world()
    gstore.upsert_customers(cust)
    gstore.upsert_links(links)
    names = ["lifetime_value", "signup_ts"]
    before = gstore.customers_of(["c007", "c008"], properties=names)
    assert before["lifetime_value"].tolist() == [cust[7].properties["lifetime_value"],
                                                 cust[8].properties["lifetime_value"]]
    # a kept property changes (the rules read it) or goes: the summary follows; other properties leave it be
    gstore.upsert_customers(CustomerUpsert.many({"c007": {"lifetime_value": 999.5}, "c008": {"lifetime_value": None},
                                    "c000": {"score": 0.7}}))
    assert current(gstore, ["c007", "c008", "c000"]) == {"customer:c007": True, "customer:c008": True,
                                                         "customer:c000": True}
    after = gstore.customers_of(["c007", "c008"], properties=names)
    assert after["lifetime_value"].tolist()[0] == 999.5 and pd.isna(after["lifetime_value"].tolist()[1])
    assert after["signup_ts"].tolist() == before["signup_ts"].tolist()
    # a deferred write leaves no summary, and reads fall back to the vertex
    with gstore.summaries.deferred():
        gstore.upsert_customers([CustomerUpsert("c007", {"lifetime_value": 5.0})])
    assert current(gstore, ["c007"]) == {"customer:c007": False}
    assert gstore.customers_of(["c007"], properties=names)["lifetime_value"].tolist() == [5.0]


def test_a_summary_written_before_a_property_was_kept_does_not_answer_for_it(engine, gstore):
    """After an upgrade adds a name to summary_properties, old summaries read the vertex for it."""
    url, settings = engine
    cust, links = small_world()
    cust[7] = CustomerUpsert("c007", {**cust[7].properties, "blocked_at": 1_700_000_000_000})
    older = settings.model_copy(deep=True)
    older.graph.gremlin.summary_properties = [p for p in older.graph.gremlin.summary_properties if p != "blocked_at"]
    with open_graph(url, older) as before_upgrade:
        before_upgrade.upsert_customers(cust)
        before_upgrade.upsert_links(links)
    assert current(gstore, ["c007", "c008"]) == {"customer:c007": True, "customer:c008": True}
    got = gstore.customers_of(["c007", "c008"], properties=["signup_ts", "blocked_at"])
    assert got["blocked_at"].tolist()[0] == 1_700_000_000_000 and pd.isna(got["blocked_at"].tolist()[1])
    assert got["signup_ts"].tolist() == [cust[7].properties["signup_ts"], cust[8].properties["signup_ts"]]


def test_concurrent_writers_to_one_hub_leave_it_exact(engine, gstore, record_property):
    """Four writers share a hub; whatever the interleaving, the last refresh sees every edge (on JanusGraph
    the writers really run at once on the server's worker threads). Conflicts the writers retried are
    recorded (``conflicts_retried`` in the JUnit report and the log)."""
    url, settings = engine
    retried = [0] * 4

    def write(worker):
        with open_graph(url, settings) as store:
            for start in range(0, 60, 15):
                store.upsert_links([IdentityLink(f"w{worker}_{i:02d}", "ip", "shared", 1_000 + i, 2_000 + i,
                                                 worker + 1, {"login": worker + 1}) for i in range(start, start + 15)])
            retried[worker] = store.client.retries
    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    record_property("conflicts_retried", sum(retried))
    logging.getLogger("fraudgraph.tests").info("four writers on one hub: %d conflicts retried", sum(retried))
    assert current(gstore, [], [("ip", "shared")]) == {"ip:shared": True}
    (row,) = gstore._identifier_stats([("ip", "shared")]).itertuples(index=False)
    assert (row.degree, row.first_seen_min, row.first_seen_max, row.events) == (240, 1_000, 1_059, 60 * (1 + 2 + 3 + 4))
    assert_reads_match_links(gstore, ["w0_00", "w3_59"], [("ip", "shared")], cap=51)
    assert SUMMARY not in gstore.customers_of(["w0_00"]).columns


def test_rebuild_after_a_load_without_summaries(gstore):
    cust, links = small_world()
    with gstore.summaries.deferred():
        gstore.upsert_links(links)
    assert not any(current(gstore, ["c000", "c001"], [("ip", "hub")]).values())
    assert_reads_match_links(gstore, ["c000", "c001"], [("ip", "hub")])  # served from the links
    counts = gstore.summaries.rebuild()
    assert counts == {"customers": len({l.customer_id for l in links}),
                      "identifiers": len({(l.kind, l.value_hash) for l in links})}
    assert all(current(gstore, ["c000", "c001"], [("ip", "hub")]).values())
    assert_reads_match_links(gstore, ["c000", "c001"], [("ip", "hub")])


def test_janusgraph_declares_the_link_schema_at_start(janusgraph_server):
    """Labels and link properties exist before the first write, so concurrent first writers of a fresh
    JanusGraph never race to create them (a lost race can fail every retry on the in-memory backend)."""
    from gremlin_python.driver.client import Client

    from fraudgraph.graph.elements import LINK_FRAME_COLUMNS
    from fraudgraph.schema import EDGE_LABEL_BY_KIND, IDENTIFIER_KINDS

    client = Client(janusgraph_server.url, "g")
    try:
        declared = client.submit(
            "m = graph.openManagement(); "
            "r = [m.getVertexLabels()*.name(), m.getRelationTypes(org.janusgraph.core.EdgeLabel)*.name(), "
            "m.getRelationTypes(org.janusgraph.core.PropertyKey)*.name()]; m.rollback(); r"
        ).all().result()
    finally:
        client.close()
    vertex_labels, edge_labels, keys = (set(x) for x in declared)
    assert {"customer", *IDENTIFIER_KINDS} <= vertex_labels
    assert set(EDGE_LABEL_BY_KIND.values()) <= edge_labels
    assert {"value_hash", SUMMARY, *LINK_FRAME_COLUMNS[3:]} <= keys


def test_links_missing_a_property_are_read_in_full(gstore):
    """Link reads get each edge's properties as one string formatted on the server; an edge without one of the link
    properties (an older writer, a bulk load) is dropped by ``format()`` and must come back as a map,
    with every other link unchanged, in every read that lists links."""
    cust, links = small_world()
    gstore.upsert_customers(cust)
    gstore.upsert_links(links)
    before = gstore.links_frame().sort_values(["customer_id", "kind", "value_hash"]).reset_index(drop=True)
    hub_vid = identifier_id("ip", "hub")
    gstore.client.run("drop a property", lambda g: g.V("customer:c003").out_e().where(
        __in_v_is(hub_vid)).properties("count_signup").drop().iterate())
    after = gstore.links_frame().sort_values(["customer_id", "kind", "value_hash"]).reset_index(drop=True)
    assert len(after) == len(before)
    row = (after["customer_id"] == "c003") & (after["value_hash"] == "hub")
    assert row.sum() == 1 and before.loc[row, "count_signup"].item() == 1
    assert pd.isna(after.loc[row, "count_signup"]).item() or after.loc[row, "count_signup"].item() == 0
    pd.testing.assert_frame_equal(after.loc[~row].drop(columns="count_signup"),
                                  before.loc[~row].drop(columns="count_signup"))
    mine = gstore.links_of(["c003"])
    assert ("ip", "hub") in set(zip(mine["kind"], mine["value_hash"]))
    assert mine.loc[mine["value_hash"] == "hub", "first_seen"].item() == before.loc[row, "first_seen"].item()
    gstore.summaries.refresh(identifiers=[("ip", "hub")])
    hub = gstore.neighbourhoods(["c003"], fanout_cap=50)["c003"].identifiers
    assert [i.degree for i in hub if i.kind == "ip" and i.value_hash == "hub"] == [
        int((before["value_hash"] == "hub").sum())
    ]
    assert "c003" in set(gstore._identifier_links([("ip", "hub")], 50)["customer_id"])


def __in_v_is(vid):
    from gremlin_python.process.graph_traversal import __

    return __.in_v().has_id(vid)


def stored_and_aggregated(store, customer_ids, identifiers):
    """Each vertex's stored summary, then the one aggregating its links gives (no advance pending)."""
    vids = [f"customer:{c}" for c in customer_ids] + [identifier_id(k, h) for k, h in identifiers]
    stored = store.summary_cache.read(vids)
    store.summaries.refresh(customer_ids, identifiers)
    return stored, store.summary_cache.read(vids)


def test_link_writes_advance_identifier_summaries_to_what_aggregating_gives(gstore):
    """A write's refresh advances the summaries it dropped (identifiers and customers) by the links it
    changed (new links below and above the held ids of a hub, more events, a first-seen moved earlier)
    instead of aggregating every link; the result is what aggregating gives, and a change the summary
    alone cannot take is aggregated."""
    cust, links = small_world(customers=180)
    gstore.upsert_customers(cust)
    gstore.upsert_links(links)
    hub = sorted((l for l in links if l.value_hash == "hub"), key=lambda l: l.customer_id)
    assert len(hub) > gstore.summary_cache.fanout_cap + 1  # more customers than the summary holds
    # a held customer of the hub whose hub link is not its latest (moving that link's first-seen keeps
    # the customer's summary advanceable), and the highest-id one (not held)
    first = next(h for h in hub if any(l.customer_id == h.customer_id and l.first_seen > h.first_seen for l in links))
    last = hub[-1]
    assert first.customer_id < hub[gstore.summary_cache.fanout_cap].customer_id
    latest = 1_700_002_000_000  # after every first-seen of the small world
    rounds = [
        # a new customer below every held id and one above them, more events on a held and an unheld link,
        # and a new link on a small identifier: every summary advanced
        (
            [IdentityLink("a000", "ip", "hub", latest, latest, 1, {"login": 1}),
             IdentityLink("zz99", "ip", "hub", 1_600_000_000_000, 1_600_000_000_000, 2, {"login": 2}),
             IdentityLink(first.customer_id, "ip", "hub", first.first_seen, first.last_seen + 10,
                          first.event_count + 3, {"login": first.event_count + 3}),
             IdentityLink(last.customer_id, "ip", "hub", last.first_seen, last.last_seen + 10,
                          last.event_count + 1, {"login": last.event_count + 1}),
             IdentityLink("a000", "device", "d1", latest, latest, 1, {"login": 1})],
            # the two identifiers, the two existing customers and the two new ones (made by the write, so
            # their empty summaries are advanced) advanced
            6, 0,
        ),
        # a held link of the hub seen earlier than it was: the hub and that customer advanced; a000's link
        # to the small identifier, the latest of both, seen earlier: their new latest first-seen is not in
        # their summaries, so their links are aggregated
        (
            [IdentityLink(first.customer_id, "ip", "hub", first.first_seen - 1_000, first.last_seen + 10,
                          first.event_count + 4, {"login": first.event_count + 4}),
             IdentityLink("a000", "device", "d1", 1_500_000_000_000, latest, 2, {"login": 2})],
            2, 2,
        ),
    ]
    identifiers = [("ip", "hub"), ("device", "d1")]
    customers = ["a000", "zz99", first.customer_id, last.customer_id]
    for written, advanced, aggregated in rounds:
        before = dict(gstore.summary_cache.refreshes)
        gstore.upsert_links(written)
        assert gstore.summary_cache.refreshes["advanced"] - before["advanced"] == advanced
        assert gstore.summary_cache.refreshes["aggregated"] - before["aggregated"] == aggregated
        stored, reference = stored_and_aggregated(gstore, customers, identifiers)
        assert stored == reference and len(stored) == 6
    assert_reads_match_links(gstore, customers, identifiers, cap=51)


def test_a_summary_another_writer_touched_meanwhile_is_aggregated(engine, gstore):
    """Another writer changes the hub between this writer's link write and its refresh: the version moved,
    so the compare-and-set refuses the advanced summary and the links are aggregated (both writes in)."""
    url, settings = engine
    cust, links = small_world()
    gstore.upsert_customers(cust)
    gstore.upsert_links(links)
    moved = gstore.summary_cache.refreshes["version_moved"]
    with open_graph(url, settings) as other:
        note = gstore.summary_cache.note_advances

        def then_another_writer(*args, **kwargs):
            note(*args, **kwargs)
            other.upsert_links([IdentityLink("b000", "ip", "hub", 1_000, 2_000, 7, {"login": 7})])

        gstore.summary_cache.note_advances = then_another_writer
        gstore.upsert_links([IdentityLink("a000", "ip", "hub", 1_000, 1_000, 5, {"login": 5})])
        del gstore.summary_cache.note_advances
    assert gstore.summary_cache.refreshes["version_moved"] == moved + 1
    stored, aggregated = stored_and_aggregated(gstore, ["a000", "b000"], [("ip", "hub")])
    assert stored == aggregated
    summary = stored[identifier_id("ip", "hub")]
    assert summary.customers == len([l for l in links if l.value_hash == "hub"]) + 2
    assert [row[0] for row in summary.lowest[:2]] == ["a000", "b000"]


def test_a_writer_refused_by_an_invalidation_aggregates_until_its_links_are_in(engine, gstore):
    """The interleaving behind a four-writer failure: writer W's links are still being written when a third
    writer's aggregation stores a hub summary without them; W's own aggregation is then refused by writer
    X's invalidation, and X advances that summary. W aggregates again (X was an invalidator, not an
    aggregator that read W's links), so the hub ends with every link; left to X, it lacked W's."""
    url, settings = engine
    cust, links = small_world()
    gstore.upsert_customers(cust)
    gstore.upsert_links(links)
    hub = identifier_id("ip", "hub")
    with open_graph(url, settings) as third, open_graph(url, settings) as x:
        read_links = gstore.links_of
        stored = gstore.summary_cache.compare_and_set
        refused_by_x = []

        def aggregation_while_w_writes(customer_ids=(), *, keys=None):  # after W's invalidation, before its edges
            third.summaries.refresh(identifiers=[("ip", "hub")])
            return read_links(customer_ids, keys=keys)

        def x_writes_before_ws_compare_and_set(g, rows):
            if not refused_by_x and any(vid == hub and version % 2 == 1 for vid, version, _ in rows):
                refused_by_x.append(True)  # W's aggregation (odd version), once
                x.upsert_links([IdentityLink("x000", "ip", "hub", 1_000, 2_000, 3, {"login": 3})])
            return stored(g, rows)

        gstore.links_of = aggregation_while_w_writes
        gstore.summary_cache.compare_and_set = x_writes_before_ws_compare_and_set
        gstore.upsert_links([IdentityLink("w000", "ip", "hub", 1_000, 1_000, 5, {"login": 5})])
        del gstore.links_of, gstore.summary_cache.compare_and_set
        assert refused_by_x and x.summary_cache.refreshes["advanced"] >= 1  # X advanced the summary it dropped
    stored_now, aggregated = stored_and_aggregated(gstore, [], [("ip", "hub")])
    assert stored_now == aggregated
    assert stored_now[hub].customers == len([l for l in links if l.value_hash == "hub"]) + 2


def test_inside_summaries_read_once_a_scoring_asks_each_summary_once(gstore):
    cust, links = small_world()
    gstore.upsert_customers(cust)
    gstore.upsert_links(links)
    centres = ["c000", "c003", "c017"]

    def scoring_reads():
        hoods = gstore.neighbourhoods(centres, fanout_cap=3)
        idents = sorted({(i.kind, i.value_hash) for nb in hoods.values() for i in nb.identifiers})
        return hoods, idents, gstore.identifier_inputs(idents, 3)

    def summary_requests():
        return gstore.client.request_stats.get("summaries", [0, 0.0])[0]

    before = summary_requests()
    hoods, idents, (shared, stats) = scoring_reads()
    twice = summary_requests() - before
    before = summary_requests()
    with gstore._summaries_read_once():
        hoods_once, idents_once, (shared_once, stats_once) = scoring_reads()
    once = summary_requests() - before
    assert (twice, once) == (2, 1)  # the identifiers' summaries: for the neighbourhoods and for the inputs
    assert hoods_once == hoods and idents_once == idents and len(idents) > 3
    pd.testing.assert_frame_equal(shared_once, shared)
    pd.testing.assert_frame_equal(stats_once, stats)
    # outside the block every read asks again
    before = summary_requests()
    scoring_reads()
    assert summary_requests() - before == 2


def test_a_link_write_whose_answer_was_lost_creates_each_link_once(engine, gstore):
    """The edge write's request is applied on the server and its answer lost (the connection drops): the
    retry must not create the links again (on JanusGraph, which names edges itself, the merge finds the
    edge by its endpoints; elsewhere by its fraudgraph id). Edges, link values and summaries end as one
    clean write leaves them."""
    cust, links = small_world()
    gstore.upsert_customers(cust)
    gstore.upsert_links(links[::2])
    run, lost = gstore.client.run, []

    def answer_lost_once(what, fn):
        def applied_then_dropped(g):
            out = fn(g)
            if what == "upsert_links.edges" and not lost:
                lost.append(what)
                raise ConnectionError("Connection was closed by server (test: after the write was applied)")
            return out

        return run(what, applied_then_dropped)

    gstore.client.run = answer_lost_once
    # links[1::2] are new, links[:10:2] already there; every other one is written with more events
    written = [*links[1::2], *links[:10:2]]
    written = [l if i % 2 else IdentityLink(l.customer_id, l.kind, l.value_hash, l.first_seen, l.last_seen + 5,
                                            l.event_count + 2, {"login": l.event_count + 2})
               for i, l in enumerate(written)]
    gstore.upsert_links(written)
    del gstore.client.run
    assert lost == ["upsert_links.edges"] and gstore.client.retries >= 1
    edges = gstore.client.run("count", lambda g: g.E().count().next())
    assert edges == len(links)  # each link once
    frame = gstore.links_frame().set_index(["customer_id", "kind", "value_hash"])
    assert not frame.index.duplicated().any()
    for l in written:
        row = frame.loc[(l.customer_id, l.kind, l.value_hash)]
        assert int(row["event_count"]) == l.event_count and int(row["last_seen"]) == l.last_seen
    customers = sorted({l.customer_id for l in written})
    identifiers = sorted({(l.kind, l.value_hash) for l in written})
    stored, aggregated = stored_and_aggregated(gstore, customers, identifiers)
    assert stored == aggregated
    assert_reads_match_links(gstore, customers, identifiers)


def test_inside_sole_writer_a_step_reads_its_customers_links_once_and_sees_its_own_writes(engine, gstore):
    """The live consumer's step inside ``sole_writer``: the base read of its customers' links serves the
    write's read of them and the scoring's neighbourhoods, and the summaries the write stored serve the
    scoring; every answer equals what the server gives after the block. A write that fails leaves its
    customers to be read again."""
    cust, links = small_world()
    gstore.upsert_customers(cust)
    gstore.upsert_links(links[::2])
    # every link of twelve customers: those not there yet, and more events on those already there
    there = {(l.customer_id, l.kind, l.value_hash) for l in links[::2]}
    written = [
        IdentityLink(l.customer_id, l.kind, l.value_hash, l.first_seen, l.last_seen + 5, l.event_count + 2,
                     {"login": l.event_count + 2}) if (l.customer_id, l.kind, l.value_hash) in there else l
        for l in links if l.customer_id < "c012"
    ]
    customers = sorted({l.customer_id for l in written})
    identifiers = sorted({(l.kind, l.value_hash) for l in written})

    def requests(*names):
        return sum(gstore.client.request_stats.get(n, [0, 0.0])[0] for n in names)

    link_reads = ("links_of", "existing_links", "neighbourhood")
    with gstore.sole_writer():
        base = gstore.links_of(keys=[(l.customer_id, l.kind, l.value_hash) for l in written])
        assert len(base) == len([c for c, _, _ in there if c < "c012"]) > 0
        reads, summary_reads = requests(*link_reads), requests("summaries")
        gstore.upsert_links(written)
        hoods = gstore.neighbourhoods(customers, fanout_cap=3)
        with gstore._summaries_read_once():  # as the online scorer reads them
            inputs = gstore.identifier_inputs(identifiers, 3)
            summary = gstore._link_summary(customers)
        assert requests(*link_reads) == reads  # the write's read and the neighbourhoods: none
        # the identifiers' and customers' summaries this write stored: none either
        assert requests("summaries") == summary_reads
    assert gstore.neighbourhoods(customers, fanout_cap=3) == hoods
    fresh = gstore.identifier_inputs(identifiers, 3)
    pd.testing.assert_frame_equal(inputs[0], fresh[0])
    pd.testing.assert_frame_equal(inputs[1], fresh[1])
    pd.testing.assert_frame_equal(summary, gstore._link_summary(customers))
    assert_reads_match_links(gstore, customers, identifiers)

    # a link write that fails after its edges may have landed: its customers are read again
    run = gstore.client.run

    def edges_fail(what, fn):
        if what == "upsert_links.edges":
            raise ValueError("test: the edge write is refused")
        return run(what, fn)

    more = [IdentityLink(l.customer_id, l.kind, l.value_hash, l.first_seen, l.last_seen + 9, l.event_count + 1,
                         {"login": l.event_count + 1}) for l in written[:6]]
    with gstore.sole_writer():
        gstore.links_of(keys=[(l.customer_id, l.kind, l.value_hash) for l in more])
        gstore.client.run = edges_fail
        with pytest.raises(Exception, match="refused"):
            gstore.upsert_links(more)
        del gstore.client.run
        reads = requests(*link_reads)
        gstore.upsert_links(more)
        assert requests(*link_reads) == reads + 1  # known no more: read afresh
    frame = gstore.links_frame().set_index(["customer_id", "kind", "value_hash"])
    for l in more:
        assert int(frame.loc[(l.customer_id, l.kind, l.value_hash), "event_count"]) == l.event_count
    assert_reads_match_links(gstore, sorted({l.customer_id for l in more}), sorted({(l.kind, l.value_hash) for l in more}))


def test_a_write_sends_its_first_chunk_alone_until_its_types_exist(gstore):
    """JanusGraph makes a label or property key on first use, and concurrent first uses race: a write with
    a type not yet written sends its first chunk alone; once written, a write of the same types sends
    every chunk at once."""
    import time

    gstore.client.batch_size = 5
    run, spans = gstore.client.run, []

    def timed(what, fn):
        def slow(g):
            start = time.perf_counter()
            time.sleep(0.05)  # long enough that chunks sent together overlap
            try:
                return fn(g)
            finally:
                spans.append((start, time.perf_counter()))

        return run(what, slow) if what == "upsert_customers" else run(what, fn)

    gstore.client.run = timed

    def first_chunk_alone():
        first = min(spans)
        return all(start >= first[1] for start, _ in spans if (start, _) != first)

    gstore.upsert_customers([CustomerUpsert(f"t{i}", {"fresh_key_a": i}) for i in range(20)])
    assert len(spans) == 4 and first_chunk_alone()
    spans.clear()
    gstore.upsert_customers([CustomerUpsert(f"u{i}", {"fresh_key_a": i}) for i in range(20)])
    assert len(spans) == 4 and not first_chunk_alone()
    spans.clear()
    gstore.upsert_customers([CustomerUpsert(f"v{i}", {"fresh_key_a": i, "fresh_key_b": 1}) for i in range(20)])
    assert len(spans) == 4 and first_chunk_alone()  # a new key: alone again
    del gstore.client.run
    assert customer_properties(gstore, "v3") == {"fresh_key_a": 3, "fresh_key_b": 1}
