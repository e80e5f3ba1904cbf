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
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from fraudgraph.config import WorldSettings
from fraudgraph.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, iso_utc, to_epoch_ms

log = logging.getLogger(__name__)

DAY, HOUR, MINUTE = DAY_MS, HOUR_MS, MINUTE_MS

TS = pa.timestamp("ms", tz="UTC")
CUSTOMERS_SCHEMA = pa.schema(
    [("customer_id", pa.string()), ("signup_ts", TS), ("country", pa.string()), ("lifetime_value", pa.float64())]
)
EVENTS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("ts", TS),
        ("customer_id", pa.string()),
        ("device_id", pa.string()),
        ("ip", pa.string()),
        ("email", pa.string()),
        ("card_fingerprint", pa.string()),
        ("amount", pa.float64()),
        ("currency", pa.string()),
        ("channel", pa.string()),
        ("country", pa.string()),
    ]
)
LIVE_SCHEMA = pa.schema(
    [
        *EVENTS_SCHEMA,
        ("block_source", pa.string()),
        ("reason", pa.string()),
        ("outcome", pa.string()),
        ("lifetime_value", pa.float64()),
    ]
)
BLOCKS_SCHEMA = pa.schema(
    [("customer_id", pa.string()), ("blocked_at", TS), ("source", pa.string()), ("reason", pa.string())]
)
APPEALS_SCHEMA = pa.schema(
    [("customer_id", pa.string()), ("contacted_at", TS), ("outcome", pa.string()), ("resolved_at", TS)]
)
TRUTH_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("is_fraud_true", pa.bool_()),
        ("fraud_type", pa.string()),
        ("ring_id", pa.string()),
        ("fraud_start_ts", TS),
    ]
)

COUNTRIES = ["AE", "SA", "PK", "EG", "JO", "MA", "QA", "KW"]
COUNTRY_WEIGHTS = [0.3, 0.25, 0.15, 0.1, 0.06, 0.06, 0.04, 0.04]
EMAIL_PROVIDERS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "live.com"]
PROVIDER_WEIGHTS = [0.55, 0.12, 0.12, 0.1, 0.08, 0.03]
DISPOSABLE_DOMAINS = ["mailinator.com", "tempmail.dev", "guerrillamail.net", "yopmail.com", "10minutemail.org"]
FIRST = [
    "ahmed",
    "sara",
    "omar",
    "fatima",
    "ali",
    "layla",
    "yusuf",
    "noor",
    "hassan",
    "mariam",
    "khalid",
    "aisha",
    "tariq",
    "huda",
    "samir",
    "rania",
    "bilal",
    "dina",
    "faisal",
    "zainab",
]
LAST = [
    "khan",
    "hassan",
    "saleh",
    "haddad",
    "nasser",
    "farouk",
    "aziz",
    "rahman",
    "mansour",
    "qureshi",
    "youssef",
    "habib",
    "karim",
    "salem",
    "jaber",
]
CHANNELS = ["app_android", "app_ios", "web"]
# First octets of the hosting / VPN ranges rings rent their IPs from; some legitimate customers use them too.
HOSTING_PREFIXES = [45, 91, 103, 185, 193]


@dataclass
class _Customer:
    customer_id: str
    signup_ts: int
    country: str
    lifetime_value: float
    kind: str = "legit"  # legit | ring | synthetic_identity
    fraud_type: str = "none"  # adds account_takeover for victims
    ring_id: str | None = None
    fraud_start_ts: int | None = None
    devices: list[str] = field(default_factory=list)
    home_ip: str | None = None
    email: str | None = None
    cards: list[str] = field(default_factory=list)
    blocked_at: int | None = None
    unblocked_at: int | None = None
    traveller: bool = False
    active_until: int | None = None  # a churned customer goes quiet for good here
    vpn: bool = False  # logs in from hosting / VPN ranges part of the time
    office_ip: str | None = None  # office or campus NAT IP shared with many others
    device_times: dict[str, int] = field(default_factory=dict)  # devices that appear at a known time
    new_phone_at: int | None = None  # a new phone, then email change and card on it
    sleeper_until: int | None = None  # a fraud account that ages quietly before it acts


_TABLE_PATHS = {
    "customers": "historical/customers.parquet",
    "events": "historical/events.parquet",
    "blocks": "historical/blocks.parquet",
    "appeals": "historical/appeals.parquet",
    "truth": "truth/ground_truth.parquet",
}


_LIVE_BATCH_ROWS = 2_048  # rows per record batch of a live run (the merge holds one batch of each run)


def _new_counts() -> dict[str, int]:
    return {"customers": 0, "historical_events": 0, "live_events": 0, "blocks": 0, "appeals": 0}


class _ChunkTables:
    """One chunk's tables, built in whichever process generated the chunk."""

    def __init__(self) -> None:
        self.tables: dict[str, pa.Table] = {}
        self.live_tables: list[pa.Table] = []
        self.counts = _new_counts()

    def write(self, name: str, schema: pa.Schema, rows: list[dict[str, Any]]) -> None:
        self.tables[name] = _to_table(rows, schema)


class _ChunkWriter:
    """Appends chunks' tables to the Parquet files, in chunk order. Each chunk's live events (sorted) go to
    a run file under ``live/.runs`` until the stream is merged, so the writer never holds them."""

    def __init__(self, out: Path):
        self.out = out
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.live_runs: list[Path] = []
        self.counts = _new_counts()

    def append(self, part: _ChunkTables) -> None:
        for name, table in part.tables.items():
            if name not in self.writers:
                self.writers[name] = pq.ParquetWriter(self.out / _TABLE_PATHS[name], table.schema)
            self.writers[name].write_table(table)
        for table in part.live_tables:
            run = self.out / "live" / ".runs" / f"run-{len(self.live_runs):05d}.arrow"
            run.parent.mkdir(exist_ok=True)
            with pa.OSFile(str(run), "wb") as sink, pa.ipc.new_file(sink, table.schema) as ipc:
                ipc.write_table(table, max_chunksize=_LIVE_BATCH_ROWS)
            self.live_runs.append(run)
        for key, n in part.counts.items():
            self.counts[key] += n

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def _to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    cols = {}
    for f in schema:
        vals = [r.get(f.name) for r in rows]
        if pa.types.is_timestamp(f.type):
            cols[f.name] = pa.array(vals, type=pa.int64()).cast(f.type)
        else:
            cols[f.name] = pa.array(vals, type=f.type)
    return pa.table(cols, schema=schema)


class _EventLog:
    """A chunk's events in the order they are made, numbered ``E<chunk>-<seq>``; events at or after the
    world's end are not kept, nor (while ``keep`` is set) those ``keep(customer, ts)`` refuses. Rows are
    turned into Arrow batches (``LIVE_SCHEMA``, every event field) every ``batch_rows`` events, which keeps
    a chunk's memory a fraction of what its Python dicts would take."""

    def __init__(self, chunk: int, end: int, batch_rows: int = 16_384) -> None:
        self.chunk, self.end, self.seq, self.batch_rows = chunk, end, 0, batch_rows
        self.keep: Callable[[_Customer, int], bool] | None = None
        self.rows: list[dict[str, Any]] = []
        self.batches: list[pa.Table] = []

    def emit(self, c: _Customer, etype: str, ts: int, **fields: Any) -> None:
        if ts >= self.end:
            return
        self.seq += 1  # numbered even when refused below: ids do not depend on the filter
        if self.keep is not None and not self.keep(c, ts):
            return
        self.rows.append(
            {
                "event_id": f"E{self.chunk:03d}-{self.seq:08d}",
                "event_type": etype,
                "ts": ts,
                "customer_id": c.customer_id,
                "country": c.country,
                **fields,
            }
        )
        if len(self.rows) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.batches.append(_to_table(self.rows, LIVE_SCHEMA))
            self.rows = []

    def table(self) -> pa.Table:
        """Every kept event, sorted by (ts, event_id)."""
        self._flush()
        table = pa.concat_tables(self.batches) if self.batches else LIVE_SCHEMA.empty_table()
        self.batches = []
        return table.sort_by([("ts", "ascending"), ("event_id", "ascending")])


class WorldGenerator:
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

    # ---------------------------------------------------------------- public
    def generate(self, out_dir: str | Path, *, progress: bool = True) -> dict[str, Any]:
        out = Path(out_dir)
        for sub in ("historical", "live", "truth"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        writer = _ChunkWriter(out)
        n, size = self.s.customers, self.s.chunk_customers
        chunks = [(c, min(size, n - c * size)) for c in range(math.ceil(n / size))]
        try:
            for part in tqdm(
                self._parts(chunks), total=len(chunks), desc="generate", unit="chunk", disable=not progress
            ):
                writer.append(part)
        finally:
            writer.close()
        self._write_live(writer.live_runs, out / "live" / "events.jsonl")
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

    def _parts(self, chunks: list[tuple[int, int]]) -> Iterator[_ChunkTables]:
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

    def _chunk_tables(self, job: tuple[int, int]) -> _ChunkTables:
        part = _ChunkTables()
        self._chunk(*job, part)
        return part

    # ------------------------------------------------------------- one chunk
    def _chunk(self, chunk: int, count: int, writer: _ChunkTables) -> None:
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
        synthetic = [self._synthetic_identity(cid, rng) for cid in ids[n_legit + n_ring :]]
        customers = legit + [c for ring in ring_pool for c in ring["members"]] + synthetic
        self._take_over(legit, ring_pool, n_ato, rng)
        # labels: blocks and appeals (imperfect, delayed)
        blocks: list[dict] = []
        appeals: list[dict] = []
        for c in customers:
            self._label_history(c, rng, blocks, appeals)
        events = self._events(chunk, customers, ring_pool, blocks, appeals, rng, nrng)
        self._write_chunk(writer, customers, events, blocks, appeals)

    def _legit_customer(self, customer_id: str, rng: random.Random) -> _Customer:
        ls = self.s.legit
        c = _Customer(
            customer_id,
            self.start + rng.randrange(self.end - self.start - DAY),
            rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0],
            round(ls.lifetime_value_median * math.exp(rng.gauss(0, 1.1)), 2),
        )
        c.traveller = rng.random() < ls.traveller_share
        if rng.random() < ls.churn_rate:
            c.active_until = c.signup_ts + DAY + rng.randrange(max(1, self.end - c.signup_ts - DAY))
        c.vpn = rng.random() < ls.vpn_share
        if rng.random() < ls.office_share:
            c.office_ip = rng.choice(self.office_ips)
        if rng.random() < ls.new_phone_share:
            c.new_phone_at = c.signup_ts + 7 * DAY + rng.randrange(max(1, self.end - c.signup_ts))
        return c

    def _synthetic_identity(self, customer_id: str, rng: random.Random) -> _Customer:
        """A lone synthetic identity: its own fresh device and card, sometimes a disposable email."""
        c = _Customer(
            customer_id,
            self.start + rng.randrange(self.end - self.start - DAY),
            rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0],
            round(rng.uniform(0, 25), 2),
            kind="synthetic_identity",
            fraud_type="synthetic_identity",
        )
        c.fraud_start_ts = c.signup_ts
        c.devices = [_device(rng)]
        c.email = _email(rng, disposable=rng.random() < 0.3)
        c.cards = [_card(rng)]
        c.home_ip = rng.choice(self.carrier_ips) if rng.random() < 0.5 else _random_ip(rng)
        return c

    def _take_over(self, legit: list[_Customer], ring_pool: list[dict], n_ato: int, rng: random.Random) -> None:
        """Account takeovers: ``n_ato`` legitimate accounts old enough get a fraud start and a ring."""
        min_age = int(self.s.fraud.takeover_min_account_age_days * DAY)
        eligible = [c for c in legit if c.signup_ts + min_age < self.end - DAY]
        for victim in rng.sample(eligible, min(n_ato, len(eligible))):
            victim.fraud_type = "account_takeover"
            victim.fraud_start_ts = victim.signup_ts + min_age + rng.randrange(self.end - victim.signup_ts - min_age)
            ring = rng.choice(ring_pool) if ring_pool else None
            victim.ring_id = ring["ring_id"] if ring else None

    def _events(
        self,
        chunk: int,
        customers: list[_Customer],
        ring_pool: list[dict],
        blocks: list[dict],
        appeals: list[dict],
        rng: random.Random,
        nrng: np.random.Generator,
    ) -> pa.Table:
        """Every event of the chunk's customers, sorted by time: behaviour while active, then the block,
        appeal and unblock events (an appeal's outcome comes when it is decided, never with the contact)."""
        ls = self.s.legit
        log = _EventLog(chunk, self.end)
        log.keep = _active  # blocked accounts do nothing (label history is drawn before behaviour)
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

    def _write_chunk(
        self,
        writer: _ChunkTables,
        customers: list[_Customer],
        events: pa.Table,
        blocks: list[dict],
        appeals: list[dict],
    ) -> None:
        """The chunk's historical tables (before the cut-off; an appeal undecided by then is pending), its
        live events, and the ground truth."""
        import pyarrow.compute as pc

        cutoff = pa.scalar(self.cutoff, type=pa.int64()).cast(TS)
        before = pc.less(events["ts"], cutoff)
        identity = pc.invert(pc.is_in(events["event_type"], value_set=pa.array(["block", "appeal", "unblock"])))
        hist = events.filter(pc.and_(before, identity)).select(EVENTS_SCHEMA.names)
        live = events.filter(pc.invert(before))
        # live signups carry the customer's profile
        signup = pc.equal(live["event_type"], "signup")
        value = pc.if_else(signup, pa.scalar(0.0), live["lifetime_value"])
        live = live.set_column(live.schema.get_field_index("lifetime_value"), "lifetime_value", value)
        writer.tables["events"] = hist
        writer.live_tables.append(live)
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

    # ------------------------------------------------------------ legit side
    def _households_and_identifiers(self, legit: list[_Customer], rng: random.Random) -> None:
        ls = self.s.legit
        i = 0
        order = list(range(len(legit)))
        rng.shuffle(order)
        while i < len(order):
            if rng.random() < ls.household_share / 2.5:  # households of 2-4 (mean ~3) hold household_share
                size = rng.randint(2, 4)
                members = [legit[j] for j in order[i : i + size]]
                i += size
                shared_device, home_ip = _device(rng), _random_ip(rng)
                shared_card = _card(rng) if rng.random() < ls.shared_card_in_household else None
                if members and rng.random() < ls.joint_signup_share:  # a family signing up together
                    first = min(m.signup_ts for m in members)
                    for m in members:
                        m.signup_ts = min(first + rng.randrange(2 * DAY), self.end - 2 * DAY)
                for m in members:
                    m.devices = [shared_device] if rng.random() < 0.5 else [_device(rng), shared_device]
                    m.home_ip = home_ip
                    if shared_card:
                        m.cards.append(shared_card)
            else:
                m = legit[order[i]]
                i += 1
                m.devices = [_device(rng)]
                m.home_ip = _random_ip(rng)
        for m in legit:
            if rng.random() < ls.extra_device_rate:
                m.devices.append(_device(rng))
            m.email = _email(rng)
            if rng.random() < ls.card_rate and not m.cards:
                m.cards.append(_card(rng))
            if m.cards and rng.random() < 0.2:
                m.cards.append(_card(rng))

    def _legit_events(self, c: _Customer, n_logins: int, n_payments: int, rng: random.Random, emit) -> None:
        ls = self.s.legit
        channel = rng.choice(CHANNELS)
        end = min(c.fraud_start_ts or self.end, c.active_until or self.end)  # takeover or churn ends the owner's use
        emit(
            c, "signup", c.signup_ts, device_id=c.devices[0], ip=self._legit_ip(c, rng), email=c.email, channel=channel
        )
        # device churn: later devices appear part-way through the life of the account (second-hand ones when bought)
        device_from = [c.signup_ts] + [
            c.device_times.get(d, c.signup_ts + rng.randrange(max(1, end - c.signup_ts))) for d in c.devices[1:]
        ]
        email = c.email
        if rng.random() < ls.email_change_rate:
            ts = c.signup_ts + rng.randrange(max(1, end - c.signup_ts))
            email = _email(rng)
            emit(c, "change_email", ts, device_id=c.devices[0], ip=self._legit_ip(c, rng), email=email, channel=channel)
        for k, card in enumerate(c.cards):
            if k == 0 and rng.random() < ls.card_at_signup_share:  # a card right away, to book the first ride
                ts = c.signup_ts + rng.randrange(10 * MINUTE, 6 * HOUR)
            elif k == 0:
                ts = c.signup_ts + int(DAY * min(90.0, 5 * math.exp(rng.gauss(0, 1.2))))
            else:
                ts = c.signup_ts + rng.randrange(max(1, end - c.signup_ts))
            emit(
                c,
                "add_card",
                ts,
                device_id=c.devices[0],
                ip=self._legit_ip(c, rng),
                card_fingerprint=card,
                channel=channel,
            )
            if k == 0 and rng.random() < ls.first_payment_soon_share:
                emit(
                    c,
                    "payment",
                    ts + rng.randrange(5 * MINUTE, 6 * HOUR),
                    device_id=c.devices[0],
                    ip=self._legit_ip(c, rng),
                    card_fingerprint=card,
                    amount=round(math.exp(rng.gauss(3.0, 0.8)), 2),
                    currency="USD",
                    channel=channel,
                )
        if c.new_phone_at is not None and c.new_phone_at < end:  # looks like a takeover, is not one
            phone, t = _device(rng), c.new_phone_at
            c.devices.append(phone)
            device_from.append(t)
            emit(c, "login", t, device_id=phone, ip=self._legit_ip(c, rng), channel=channel)
            if rng.random() < 0.5:
                t += rng.randrange(5 * MINUTE, 3 * HOUR)
                emit(
                    c, "change_email", t, device_id=phone, ip=self._legit_ip(c, rng), email=_email(rng), channel=channel
                )
            t += rng.randrange(5 * MINUTE, 3 * HOUR)
            new_card = _card(rng)
            c.cards.append(new_card)
            emit(
                c, "add_card", t, device_id=phone, ip=self._legit_ip(c, rng), card_fingerprint=new_card, channel=channel
            )
        span = max(1, end - c.signup_ts)
        for _ in range(n_logins):
            ts = c.signup_ts + rng.randrange(span)
            emit(
                c,
                "login",
                ts,
                device_id=self._device_at(c, device_from, ts, rng),
                ip=self._legit_ip(c, rng),
                channel=channel,
            )
        for _ in range(n_payments if c.cards else 0):
            ts = c.signup_ts + rng.randrange(span)
            emit(
                c,
                "payment",
                ts,
                device_id=self._device_at(c, device_from, ts, rng),
                ip=self._legit_ip(c, rng),
                card_fingerprint=rng.choice(c.cards),
                amount=round(math.exp(rng.gauss(3.0, 0.8)), 2),
                currency="USD",
                channel=channel,
            )

    @staticmethod
    def _device_at(c: _Customer, device_from: list[int], ts: int, rng: random.Random) -> str:
        usable = [d for d, t in zip(c.devices, device_from) if t <= ts] or c.devices[:1]
        return rng.choice(usable)

    def _legit_ip(self, c: _Customer, rng: random.Random) -> str:
        ls = self.s.legit
        if c.traveller and rng.random() < 0.4:
            return _random_ip(rng)
        if c.vpn and rng.random() < 0.5:
            return _hosting_ip(rng)
        if c.office_ip and rng.random() < 0.4:
            return c.office_ip
        r = rng.random()
        if r < ls.public_wifi_share:
            return rng.choice(self.wifi_ips)
        if r < ls.public_wifi_share + ls.carrier_ip_share:
            return rng.choice(self.carrier_ips)
        return c.home_ip or _random_ip(rng)

    # ------------------------------------------------------------ fraud side
    def _rings(
        self, member_ids: list[str], chunk: int, rng: random.Random, legit: list[_Customer]
    ) -> list[dict[str, Any]]:
        fs = self.s.fraud
        card_owners = [c for c in legit if c.cards]
        rings, i, r = [], 0, 0
        while i < len(member_ids):
            size = max(3, min(len(member_ids) - i, int(rng.gauss(fs.ring_size_mean, fs.ring_size_mean / 3))))
            if len(member_ids) - i - size < 3:
                size = len(member_ids) - i
            members_ids = member_ids[i : i + size]
            i += size
            ring_id = f"R{chunk:03d}-{r:03d}"
            r += 1
            subnet = f"{rng.choice(HOSTING_PREFIXES)}.{rng.randrange(256)}.{rng.randrange(256)}"
            domain = rng.choice(DISPOSABLE_DOMAINS + ["gmail.com", "outlook.com"])
            prefix = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 6)))
            start = self.start + rng.randrange(self.end - self.start - 5 * DAY)
            gens = max(1, min(fs.ring_generations, size // 2))
            devices = [_device(rng) for _ in range(fs.ring_devices)]
            cards = [self._ring_card(rng, card_owners) for _ in range(fs.ring_cards)]
            members, per_gen = [], math.ceil(size / gens)
            generations = []
            for g in range(gens):
                if g > 0:  # reuse part of the identifiers, bring new ones
                    keep = max(1, round(len(devices) * fs.ring_identifier_reuse))
                    devices = rng.sample(devices, keep) + [_device(rng) for _ in range(fs.ring_devices - keep)]
                    keep = max(1, round(len(cards) * fs.ring_identifier_reuse))
                    cards = rng.sample(cards, keep) + [
                        self._ring_card(rng, card_owners) for _ in range(fs.ring_cards - keep)
                    ]
                generations.append((list(devices), list(cards)))
                burst_start = min(start + g * rng.randrange(15 * DAY, 60 * DAY), self.end - 3 * DAY)
                spread = int(fs.ring_signup_spread_days * DAY)
                for cid in members_ids[g * per_gen : (g + 1) * per_gen]:
                    signup = min(burst_start + rng.randrange(spread), self.end - 2 * DAY)
                    c = _Customer(
                        cid,
                        signup,
                        rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0],
                        round(rng.uniform(0, 30), 2),
                        kind="ring",
                        fraud_type="ring",
                        ring_id=ring_id,
                    )
                    c.fraud_start_ts = c.signup_ts
                    if rng.random() < fs.sleeper_share:
                        lo, hi = fs.sleeper_days
                        c.sleeper_until = c.signup_ts + int(rng.uniform(lo, hi) * DAY)
                    c.devices = [rng.choice(devices)]
                    c.cards = rng.sample(cards, rng.randint(1, 2))
                    c.email = (
                        f"{prefix}{rng.randrange(10, 9999)}@{domain}"
                        if rng.random() < 0.6
                        else _email(rng, disposable=rng.random() < 0.3)
                    )
                    c.home_ip = f"{subnet}.{rng.randrange(1, 255)}"
                    members.append(c)
            office = rng.choice(self.office_ips)
            rings.append(
                {
                    "ring_id": ring_id,
                    "members": members,
                    "subnet": subnet,
                    "domain": domain,
                    "prefix": prefix,
                    "generations": generations,
                    "office_ip": office,
                }
            )
        return rings

    def _fraud_ip(self, ring: dict | None, c: _Customer, rng: random.Random) -> str:
        """A ring's own hosting subnet most of the time, else the carrier NAT, public Wi-Fi or an office IP
        legitimate customers share; a lone fraudster's own IP or a carrier's."""
        fs = self.s.fraud
        r = rng.random()
        if r < fs.carrier_ip_share:
            return rng.choice(self.carrier_ips)
        if r < fs.carrier_ip_share + fs.public_wifi_share:
            return rng.choice(self.wifi_ips)
        if ring is not None and r < fs.carrier_ip_share + fs.public_wifi_share + fs.office_ip_share:
            return ring["office_ip"]
        return f"{ring['subnet']}.{rng.randrange(1, 255)}" if ring else (c.home_ip or _random_ip(rng))

    def _fraud_events(self, c: _Customer, ring: dict | None, rng: random.Random, emit) -> None:
        fs = self.s.fraud
        channel = rng.choice(CHANNELS)
        ip = lambda: self._fraud_ip(ring, c, rng)  # noqa: E731
        t = c.signup_ts
        emit(c, "signup", t, device_id=c.devices[0], ip=ip(), email=c.email, channel=channel)
        if c.sleeper_until is not None:  # ages quietly: a login now and then, then acts
            for _ in range(rng.randint(0, 3)):
                emit(
                    c,
                    "login",
                    t + rng.randrange(max(1, c.sleeper_until - t)),
                    device_id=c.devices[0],
                    ip=ip(),
                    channel=channel,
                )
            t = c.sleeper_until
        for k, card in enumerate(c.cards):
            if k == 0 and rng.random() >= fs.card_at_signup_share:
                t += rng.randrange(DAY, 20 * DAY)
            else:
                t += rng.randrange(10 * MINUTE, 6 * HOUR)
            emit(c, "add_card", t, device_id=c.devices[0], ip=ip(), card_fingerprint=card, channel=channel)
        for _ in range(rng.randint(1, 6)):
            t += rng.randrange(HOUR, 3 * DAY)
            emit(
                c,
                "payment",
                t,
                device_id=c.devices[0],
                ip=ip(),
                card_fingerprint=rng.choice(c.cards),
                amount=round(math.exp(rng.gauss(4.2, 0.7)), 2),
                currency="USD",
                channel=channel,
            )
            if rng.random() < 0.5:
                emit(c, "login", t - rng.randrange(MINUTE, HOUR), device_id=c.devices[0], ip=ip(), channel=channel)

    def _ring_card(self, rng: random.Random, card_owners: list[_Customer]) -> str:
        """A new card, or one stolen from a legitimate customer who keeps using it (a legitimate collision)."""
        if card_owners and rng.random() < self.s.fraud.stolen_card_share:
            return rng.choice(rng.choice(card_owners).cards)
        return _card(rng)

    def _resell_ring_devices(self, rings: list[dict[str, Any]], legit: list[_Customer], rng: random.Random) -> None:
        """Some ring devices are sold on: a legitimate customer starts using one 1-4 months after the ring."""
        if not legit:
            return
        for ring in rings:
            last = max(m.signup_ts for m in ring["members"])
            for devices, _ in ring["generations"]:
                for device in devices:
                    if rng.random() < self.s.fraud.resold_device_share:
                        buyer = rng.choice(legit)
                        if device not in buyer.devices:
                            buyer.devices.append(device)
                            buyer.device_times[device] = last + rng.randrange(30 * DAY, 120 * DAY)

    def _takeover_events(self, c: _Customer, ring: dict | None, rng: random.Random, emit) -> None:
        if ring is not None:
            devices, cards = rng.choice(ring["generations"])
            device, card = rng.choice(devices), rng.choice(cards)
            ip = lambda: self._fraud_ip(ring, c, rng)  # noqa: E731
            email = (
                f"{ring['prefix']}{rng.randrange(10, 9999)}@{ring['domain']}"
                if rng.random() < 0.5
                else _email(rng, disposable=rng.random() < 0.3)
            )
        else:
            device, card, email = _device(rng), _card(rng), _email(rng, disposable=True)
            ip = lambda: _random_ip(rng)  # noqa: E731
        t = c.fraud_start_ts
        emit(c, "login", t, device_id=device, ip=ip(), channel="web")
        t += rng.randrange(5 * MINUTE, 2 * HOUR)
        emit(c, "change_email", t, device_id=device, ip=ip(), email=email, channel="web")
        t += rng.randrange(5 * MINUTE, 2 * HOUR)
        emit(c, "add_card", t, device_id=device, ip=ip(), card_fingerprint=card, channel="web")
        for _ in range(rng.randint(1, 4)):
            t += rng.randrange(30 * MINUTE, DAY)
            emit(
                c,
                "payment",
                t,
                device_id=device,
                ip=ip(),
                card_fingerprint=card,
                amount=round(math.exp(rng.gauss(4.5, 0.6)), 2),
                currency="USD",
                channel="web",
            )

    # ---------------------------------------------------------------- labels
    def _label_history(self, c: _Customer, rng: random.Random, blocks: list, appeals: list) -> None:
        lb = self.s.blocking
        if c.fraud_type != "none":
            if rng.random() >= lb.detect_rate[c.fraud_type]:  # type: ignore[index]  # a fraudster's type is one of the three
                return  # never caught
            delay = lb.block_delay_median_days * math.exp(rng.gauss(0, lb.block_delay_sigma))
            blocked_at = c.fraud_start_ts + int(delay * DAY)
            if blocked_at >= self.end:
                return  # caught only after the world ends: recent fraud not yet blocked
            reason = {
                "ring": "linked_to_fraud_ring",
                "account_takeover": "account_takeover",
                "synthetic_identity": "synthetic_identity",
            }[c.fraud_type]
            c.blocked_at = blocked_at
            blocks.append(
                {
                    "customer_id": c.customer_id,
                    "blocked_at": blocked_at,
                    "source": "manual" if rng.random() < lb.manual_block_share else "rule",
                    "reason": reason,
                }
            )
            if rng.random() < lb.fraud_appeal_rate:
                contacted = blocked_at + int(lb.appeal_delay_median_days * math.exp(rng.gauss(0, 0.7)) * DAY)
                appeals.append(
                    {
                        "customer_id": c.customer_id,
                        "contacted_at": contacted,
                        "outcome": "upheld",
                        "resolved_at": contacted + int(lb.unblock_delay_days * DAY),
                    }
                )
            return
        if rng.random() >= lb.false_block_rate:
            return
        blocked_at = c.signup_ts + DAY + rng.randrange(max(1, self.end - c.signup_ts - DAY))
        if blocked_at >= self.end:
            return
        c.blocked_at = blocked_at
        blocks.append(
            {
                "customer_id": c.customer_id,
                "blocked_at": blocked_at,
                "source": "manual" if rng.random() < lb.manual_block_share else "rule",
                "reason": rng.choice(["suspicious_payment", "velocity_rule", "device_mismatch"]),
            }
        )
        if rng.random() < lb.false_block_appeal_rate:
            contacted = blocked_at + int(lb.appeal_delay_median_days * math.exp(rng.gauss(0, 0.7)) * DAY)
            resolved = contacted + int(lb.unblock_delay_days * DAY)
            c.unblocked_at = resolved
            appeals.append(
                {
                    "customer_id": c.customer_id,
                    "contacted_at": contacted,
                    "outcome": "unblocked",
                    "resolved_at": resolved,
                }
            )

    # ------------------------------------------------------------------ live
    @staticmethod
    def _write_live(runs: list[Path], path: Path) -> None:
        """One time-ordered JSONL stream (ISO-8601 UTC timestamps, absent fields omitted), merged from the
        chunks' sorted runs a batch at a time (memory: one batch per run), then the runs are removed."""
        import heapq
        import shutil

        def lines(run: Path) -> Iterator[tuple[int, str, str]]:
            with pa.OSFile(str(run)) as source:  # not mapped: read one batch at a time
                reader = pa.ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    frame = reader.get_batch(i).to_pandas()
                    keys = frame["ts"].astype("int64").tolist()
                    frame["ts"] = frame["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
                    for key, rec in zip(keys, frame.to_dict("records")):
                        text = json.dumps(
                            {k: v for k, v in rec.items() if v is not None and v == v}, separators=(",", ":")
                        )
                        yield key, rec["event_id"], text

        with open(path, "w") as fh:
            for _, _, text in heapq.merge(*(lines(run) for run in runs)):
                fh.write(text)
                fh.write("\n")
        if runs:
            shutil.rmtree(runs[0].parent)


# ------------------------------------------------------------------ helpers
def _active(c: _Customer, ts: int) -> bool:
    """False for identity events while the account is blocked (blocked accounts do nothing)."""
    if c.blocked_at is None or ts < c.blocked_at:
        return True
    return c.unblocked_at is not None and ts >= c.unblocked_at


def _device(rng: random.Random) -> str:
    return f"dev-{rng.getrandbits(48):012x}"


def _card(rng: random.Random) -> str:
    return f"fp_{rng.getrandbits(64):016x}"


def _hosting_ip(rng: random.Random) -> str:
    return f"{rng.choice(HOSTING_PREFIXES)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _random_ip(rng: random.Random) -> str:
    return f"{rng.randrange(11, 220)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _email(rng: random.Random, disposable: bool = False) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    style = rng.random()
    local = (
        f"{first}.{last}{rng.randrange(1, 100_000)}"
        if style < 0.4
        else f"{first}{last}{rng.randrange(1, 1_000_000)}"
        if style < 0.8
        else f"{first[0]}{last}{rng.randrange(1970, 2008)}_{rng.randrange(1, 100_000)}"
    )
    domain = rng.choice(DISPOSABLE_DOMAINS) if disposable else rng.choices(EMAIL_PROVIDERS, PROVIDER_WEIGHTS)[0]
    if rng.random() < 0.3:
        local = local.capitalize()  # raw data is not normalised
    return f"{local}{rng.randrange(100, 999) if disposable else ''}@{domain}"
