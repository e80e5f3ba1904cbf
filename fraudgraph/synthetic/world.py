"""Synthetic identity-fraud world with ground truth, noisy labels and a live event stream.

Real identity data is private, so this module builds a world in which the
identity graph genuinely matters and keeps the truth apart for evaluation.
See ``docs/synthetic-world.md`` for what it simulates, every knob
(``world`` section of ``conf/default.yaml``) and the rates it produces.

Outputs under ``DIR`` (the contract every later stage reads):

- ``historical/customers.parquet``: customer_id, signup_ts, country, lifetime_value
- ``historical/events.parquet``: event_id, event_type, ts, customer_id, device_id, ip,
  email, card_fingerprint, amount, currency, channel, country
- ``historical/blocks.parquet``: customer_id, blocked_at, source (manual | rule), reason
- ``historical/appeals.parquet``: customer_id, contacted_at, outcome (unblocked | upheld |
  pending), resolved_at
- ``live/events.jsonl``: every event after the cut-off, time-ordered, including
  block, appeal and unblock events
- ``truth/ground_truth.parquet``: customer_id, is_fraud_true, fraud_type (none |
  synthetic_identity | ring | account_takeover), ring_id, fraud_start_ts

The world is generated in chunks of ``chunk_customers`` (each with its own
households, rings and takeovers; carrier and public Wi-Fi IPs are shared by
all chunks), written as it goes, so memory stays bounded. Deterministic for a
given seed and configuration.

The generator is composed of parts, one module each: ``identities`` (the customer record and raw
identifiers), ``legit`` and ``fraud`` (behaviour), ``blocking`` (label noise) and ``tables`` (schemas,
writers and the live stream's merge).
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from fraudgraph.config import WorldSettings
from fraudgraph.synthetic.blocking import BlockingBehaviour
from fraudgraph.synthetic.fraud import FraudBehaviour
from fraudgraph.synthetic.identities import Customer, is_active
from fraudgraph.synthetic.legit import LegitBehaviour
from fraudgraph.synthetic.tables import (
    APPEALS_SCHEMA,
    BLOCKS_SCHEMA,
    CUSTOMERS_SCHEMA,
    EVENTS_SCHEMA,
    TRUTH_SCHEMA,
    TS,
    ChunkTables,
    ChunkWriter,
    EventLog,
    write_live,
)
from fraudgraph.timeutil import DAY_MS, iso_utc, to_epoch_ms

log = logging.getLogger(__name__)

DAY = DAY_MS


class WorldGenerator(LegitBehaviour, FraudBehaviour, BlockingBehaviour):
    """Generates the synthetic world described in the module docstring.

    >>> WorldGenerator(settings.world).generate("world/")  # doctest: +SKIP
    """

    def __init__(self, settings: WorldSettings):
        self.s = settings
        self.start = to_epoch_ms(settings.start)
        self.cutoff = self.start + int(settings.history_days * DAY)
        self.end = self.cutoff + int(settings.live_days * DAY)
        grng = random.Random(f"{settings.seed}:global")
        self.carrier_ips = [
            f"100.{64 + i // 65536 % 64}.{i // 256 % 256}.{i % 256}"
            for i in grng.sample(range(4_000_000), settings.legit.carrier_ips)
        ]
        self.wifi_ips = [
            f"{grng.randrange(11, 220)}.{grng.randrange(256)}.{grng.randrange(256)}.{grng.randrange(1, 255)}"
            for _ in range(settings.legit.public_wifi_ips)
        ]
        self.office_ips = [
            f"{grng.choice([62, 81, 141, 194])}.{grng.randrange(256)}.{grng.randrange(256)}.{grng.randrange(1, 255)}"
            for _ in range(settings.legit.office_ips)
        ]

    def generate(self, out_dir: str | Path, *, progress: bool = True) -> dict[str, Any]:
        out = Path(out_dir)
        for sub in ("historical", "live", "truth"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        writer = ChunkWriter(out)
        n, size = self.s.customers, self.s.chunk_customers
        chunks = [(c, min(size, n - c * size)) for c in range(math.ceil(n / size))]
        try:
            for part in tqdm(
                self._parts(chunks), total=len(chunks), desc="generate", unit="chunk", disable=not progress
            ):
                writer.append(part)
        finally:
            writer.close()
        write_live(writer.live_runs, out / "live" / "events.jsonl")
        summary = {
            "out": str(out),
            "customers": n,
            **writer.counts,
            "cutoff": iso_utc(self.cutoff),
            "end": iso_utc(self.end),
            "seed": self.s.seed,
        }
        (out / "manifest.json").write_text(json.dumps(summary, indent=2))
        return summary

    def _parts(self, chunks: list[tuple[int, int]]) -> Iterator[ChunkTables]:
        """Every chunk's tables, in chunk order. Each chunk depends only on (seed, chunk), so
        ``world.workers`` processes generate them side by side; at most ``workers + 1`` finished chunks
        wait to be written, which bounds memory. The world is the same whatever the worker count."""
        workers = min(self.s.workers, len(chunks))
        if workers <= 1:
            yield from map(self._chunk_tables, chunks)
            return
        import multiprocessing
        from collections import deque
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            pending: deque = deque()
            for job in chunks:
                pending.append(pool.submit(self._chunk_tables, job))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _chunk_tables(self, job: tuple[int, int]) -> ChunkTables:
        part = ChunkTables()
        self._chunk(*job, part)
        return part

    def _chunk(self, chunk: int, count: int, writer: ChunkTables) -> None:
        """One chunk of ``count`` customers: who they are, their label history and their events, written
        to ``writer``. Every draw comes from the chunk's own generators in a fixed order, so a chunk is the
        same whichever process makes it."""
        rng = random.Random(f"{self.s.seed}:{chunk}")
        nrng = np.random.default_rng([self.s.seed, chunk])
        fs = self.s.fraud
        n_fraud = round(count * fs.prevalence)
        n_ring = round(n_fraud * fs.ring_share)
        n_ato = min(round(n_fraud * fs.takeover_share), n_fraud - n_ring)
        n_synth = n_fraud - n_ring - n_ato
        n_legit = count - n_ring - n_synth
        ids = [f"C{chunk:03d}{i:06d}" for i in rng.sample(range(1_000_000), count)]
        legit = [self._legit_customer(cid, rng) for cid in ids[:n_legit]]  # some in households:
        self._households_and_identifiers(legit, rng)
        ring_pool = self._rings(ids[n_legit : n_legit + n_ring], chunk, rng, legit)
        self._resell_ring_devices(ring_pool, legit, rng)
        synthetic = self._synthetic_factories(ids[n_legit + n_ring :], rng, legit)
        customers = legit + [c for ring in ring_pool for c in ring["members"]] + synthetic
        self._take_over(legit, ring_pool, n_ato, rng)
        # labels: blocks and appeals (imperfect, delayed)
        blocks: list[dict] = []
        appeals: list[dict] = []
        for c in customers:
            self._label_history(c, rng, blocks, appeals)
        events = self._events(chunk, customers, ring_pool, blocks, appeals, rng, nrng)
        self._write_chunk(writer, customers, events, blocks, appeals)

    def _events(
        self,
        chunk: int,
        customers: list[Customer],
        ring_pool: list[dict],
        blocks: list[dict],
        appeals: list[dict],
        rng: random.Random,
        nrng: np.random.Generator,
    ) -> pa.Table:
        """Every event of the chunk's customers, sorted by time: behaviour while active, then the block,
        appeal and unblock events (an appeal's outcome comes when it is decided, never with the contact)."""
        ls = self.s.legit
        log = EventLog(chunk, self.end, salt=str(self.s.seed))
        log.keep = is_active  # blocked accounts do nothing but fraudsters' logins (label history comes first)
        months = np.clip((self.end - np.array([c.signup_ts for c in customers])) / (30 * DAY), 0, None)
        n_logins = nrng.poisson(ls.logins_per_month * months)
        n_payments = nrng.poisson(ls.payments_per_month * months)
        ring_by_id = {r["ring_id"]: r for r in ring_pool}
        for c, nl, np_ in zip(customers, n_logins, n_payments):
            if c.kind == "legit":
                self._legit_events(c, int(nl), int(np_), rng, log.emit)
                if c.fraud_type == "account_takeover":
                    self._takeover_events(c, ring_by_id.get(c.ring_id), rng, log.emit)
            else:
                self._fraud_events(c, ring_by_id.get(c.ring_id), rng, log.emit)
            if c.fraud_type != "none" and c.kind != "legit" and c.blocked_at is not None:
                self._tries_after_block(c, ring_by_id.get(c.ring_id), rng, log.emit)
        by_id = {c.customer_id: c for c in customers}
        log.keep = None
        for b in blocks:
            log.emit(by_id[b["customer_id"]], "block", b["blocked_at"], block_source=b["source"], reason=b["reason"])
        for a in appeals:
            c = by_id[a["customer_id"]]
            log.emit(c, "appeal", a["contacted_at"])  # the outcome is not known at contact: it comes when decided
            if a["outcome"] == "unblocked" and a["resolved_at"] is not None:
                log.emit(c, "unblock", a["resolved_at"], reason="appeal_accepted")
        return log.table()

    def _split_events(self, events: pa.Table) -> tuple[pa.Table, pa.Table]:
        """``(historical, live)``: the identity events before the cut-off (label events are tables of their
        own), and every event from it on (a live signup's lifetime value is 0)."""
        import pyarrow.compute as pc

        cutoff = pa.scalar(self.cutoff, type=pa.int64()).cast(TS)
        before = pc.less(events["ts"], cutoff)
        identity = pc.invert(pc.is_in(events["event_type"], value_set=pa.array(["block", "appeal", "unblock"])))
        hist = events.filter(pc.and_(before, identity)).select(EVENTS_SCHEMA.names)
        live = events.filter(pc.invert(before))
        signup = pc.equal(live["event_type"], "signup")
        value = pc.if_else(signup, pa.scalar(0.0), live["lifetime_value"])
        return hist, live.set_column(live.schema.get_field_index("lifetime_value"), "lifetime_value", value)

    def _write_chunk(
        self,
        writer: ChunkTables,
        customers: list[Customer],
        events: pa.Table,
        blocks: list[dict],
        appeals: list[dict],
    ) -> None:
        """The chunk's historical tables (before the cut-off; an appeal undecided by then is pending), its
        live events, and the ground truth."""
        hist, live = self._split_events(events)
        writer.tables["events"] = hist
        writer.live_tables.append(live)
        # rows in id order (ids are drawn at random): the order of rows says nothing of who is who
        customers = sorted(customers, key=lambda c: c.customer_id)
        blocks = sorted(blocks, key=lambda b: (b["blocked_at"], b["customer_id"]))
        appeals = sorted(appeals, key=lambda a: (a["contacted_at"], a["customer_id"]))
        hist_customers = [c for c in customers if c.signup_ts < self.cutoff]
        writer.write(
            "customers",
            CUSTOMERS_SCHEMA,
            [
                {
                    "customer_id": c.customer_id,
                    "signup_ts": c.signup_ts,
                    "country": c.country,
                    "lifetime_value": c.lifetime_value,
                }
                for c in hist_customers
            ],
        )
        hist_blocks = [b for b in blocks if b["blocked_at"] < self.cutoff]
        writer.write("blocks", BLOCKS_SCHEMA, hist_blocks)
        hist_appeals = []
        for a in appeals:
            if a["contacted_at"] < self.cutoff:
                resolved = a["resolved_at"] if a["resolved_at"] is not None and a["resolved_at"] < self.cutoff else None
                hist_appeals.append({**a, "resolved_at": resolved, "outcome": a["outcome"] if resolved else "pending"})
        writer.write("appeals", APPEALS_SCHEMA, hist_appeals)
        writer.write(
            "truth",
            TRUTH_SCHEMA,
            [
                {
                    "customer_id": c.customer_id,
                    "is_fraud_true": c.fraud_type != "none",
                    "fraud_type": c.fraud_type,
                    "ring_id": c.ring_id,
                    "fraud_start_ts": c.fraud_start_ts,
                }
                for c in customers
            ],
        )
        writer.counts["customers"] += len(hist_customers)
        writer.counts["historical_events"] += hist.num_rows
        writer.counts["live_events"] += live.num_rows
        writer.counts["blocks"] += len(hist_blocks)
        writer.counts["appeals"] += len(hist_appeals)
