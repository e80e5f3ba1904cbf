"""One ledger shared by the consumers of a group: journaled work belongs to the partition its events came
from, a claim hands a partition's unfinished work to its new owner, and the old owner is fenced off."""

from __future__ import annotations

import pytest

from serving.consumer.ledger import Ledger, PartitionRevoked


def journal(ledger: Ledger, customer: str, owner: str, event: str, ts: int) -> None:
    ledger.record({event: "d"}, {(customer, "device", "h1"): (ts, ts, 1, {"login": 1})}, {}, {customer: {"x": 1}},
                  {customer: (event, "login", ts)}, None, ts, {customer: owner})


def test_a_claim_hands_the_partitions_unfinished_work_to_its_new_owner_and_fences_the_old_one(tmp_path):
    a, b = Ledger(tmp_path / "ledger.db"), Ledger(tmp_path / "ledger.db")  # two consumers, one file
    a.claim(["live/0", "live/1"], "consumer-a")
    journal(a, "C1", "live/0", "e1", 1_000)
    journal(a, "C2", "live/1", "e2", 2_000)
    # consumer a dies with both journaled and nothing applied; b is assigned partition 0
    b.claim(["live/0"], "consumer-b")
    mine = b.pending(["live/0"])
    assert [r[0] for r in mine.links] == ["C1"] and list(mine.customers) == ["C1"]
    assert [s[0] for s in mine.scores] == ["C1"] and mine.as_of_ms == 1_000
    assert mine.owners == frozenset({"live/0"})
    assert [r[0] for r in b.dirty_links(["live/1"])] == ["C2"]  # partition 1 waits for its owner
    assert b.pending([""]).links == []  # work without partitions is no one's here

    # a is fenced off partition 0 (journal and graph writes), not partition 1
    with pytest.raises(PartitionRevoked, match="live/0"):
        journal(a, "C1", "live/0", "e3", 3_000)
    with pytest.raises(PartitionRevoked):
        a.check_fence(["live/0"])
    a.check_fence(["live/1"])
    assert a.seen_digests(["e3"]) == {}  # the refused transaction left nothing behind
    journal(b, "C1", "live/0", "e3", 3_000)  # the new owner goes on
    assert b.link_states([("C1", "device", "h1")])[("C1", "device", "h1")][2] == 2

    # a partition never claimed by this consumer is refused too
    with pytest.raises(PartitionRevoked):
        journal(b, "C2", "live/1", "e4", 4_000)
    b.release(["live/0"])
    with pytest.raises(PartitionRevoked):
        b.check_fence(["live/0"])
    a.close()
    b.close()


def test_work_without_partitions_needs_no_claim(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    journal(ledger, "C1", "", "e1", 1_000)
    entry = ledger.pending()
    assert [r[0] for r in entry.links] == ["C1"] and entry.as_of_ms == 1_000
    ledger.scored(["C1"])
    assert ledger.pending_as_of() is None and ledger.pending_scores() == []
    ledger.close()


def test_a_lease_not_renewed_is_taken_over_and_its_old_holder_fenced_off(tmp_path):
    """Competing consumers (one SQS queue) journal under leases: a lease renewed stays its holder's; one
    left unrenewed past lease_s is another consumer's to claim, finish and retire, and its old holder,
    back from a stall, can neither write for it nor renew it."""
    import time

    a, b = Ledger(tmp_path / "ledger.db"), Ledger(tmp_path / "ledger.db")
    a.claim(["lease:a"], "consumer-a")
    b.claim(["lease:b"], "consumer-b")
    journal(a, "C1", "lease:a", "e1", 1_000)
    assert b.expired_leases(60) == [] and a.expired_leases(60) == []
    time.sleep(0.3)
    assert b.renew("lease:b")
    assert b.expired_leases(0.2) == ["lease:a"]  # a has not renewed for 0.3 s; b's own is never listed
    assert a.expired_leases(0.2) == []  # b renewed just now, and a's own lease is a's
    b.claim(["lease:a"], "consumer-b")
    assert [r[0] for r in b.pending(["lease:a"]).links] == ["C1"]
    # a comes back: fenced off its lease's journal, and its renewal fails (it must take a new lease)
    with pytest.raises(PartitionRevoked, match="lease:a"):
        journal(a, "C2", "lease:a", "e2", 2_000)
    assert not a.renew("lease:a")
    b.retire("lease:a")
    assert b.expired_leases(0) == [] and not a.renew("lease:a")  # retired: nobody claims it again
    with pytest.raises(PartitionRevoked):
        a.check_fence(["lease:a"])
    a.close()
    b.close()


def _open_fresh(path: str, start) -> str:
    start.wait()  # every process opens the new file at once
    try:
        Ledger(path).close()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return f"{type(exc).__name__}: {exc}"


def test_consumers_starting_together_on_a_new_shared_ledger_all_open_it(tmp_path):
    """The consumers of a group start at once on one new ledger file: none may fail creating it (setting
    its journal mode, creating or upgrading its tables)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    for attempt in range(3):
        start = ctx.Manager().Barrier(6)
        with ctx.Pool(6) as pool:
            got = pool.starmap(_open_fresh, [(str(tmp_path / f"ledger-{attempt}.db"), start)] * 6)
        assert got == ["ok"] * 6
