"""Helpers shared by the benchmark scripts (not part of the library)."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path

# benchmarks run on synthetic worlds: the public demo PII key is fine there (never for real data)
os.environ.setdefault("FRAUDGRAPH_PRIVACY__ALLOW_DEMO_KEY", "true")

ROOT = Path(__file__).resolve().parent.parent
# the repository first, ahead of bench/ itself: bench/etl.py must not shadow the etl package, even when
# PYTHONPATH already lists the repository after the script's folder
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p != str(ROOT)]


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TreeMemorySampler:
    """Samples the proportional set size (PSS) of this process and its children every ``interval_s``
    and keeps the largest sum: memory the whole process tree holds at once, each shared page (what
    forked workers share with their parent) counted once. Linux only (``/proc/*/smaps_rollup``);
    ``peak_mb`` is None where it cannot read it.

    >>> with TreeMemorySampler() as mem: ...  # doctest: +SKIP
    >>> mem.peak_mb
    """

    def __init__(self, interval_s: float = 0.2):
        import threading

        self.interval_s = interval_s
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pss-sampler", daemon=True)

    @staticmethod
    def _pss_kb(pid: int) -> int:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            return sum(int(line.split()[1]) for line in fh if line.startswith("Pss:"))

    @staticmethod
    def _children(pid: int) -> list[int]:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as fh:
                return [int(p) for p in fh.read().split()]
        except OSError:
            return []

    def sample_mb(self) -> float:
        import os

        pids, total = [os.getpid()], 0
        while pids:
            pid = pids.pop()
            try:
                total += self._pss_kb(pid)
            except (OSError, ValueError):
                continue  # the process ended between listing and reading
            pids += self._children(pid)
        return total / 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                mb = self.sample_mb()
            except OSError:
                return
            self.peak_mb = mb if self.peak_mb is None else max(self.peak_mb, mb)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> TreeMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def percentile_ms(samples_s: list[float], q: float) -> float:
    xs = sorted(samples_s)
    if not xs:
        return float("nan")
    idx = min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))
    return xs[idx] * 1000


def machine() -> dict:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def write_result(path: str | None, result: dict) -> None:
    result = {"machine": machine(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def world_job_arguments(ap, what: str) -> None:
    """The arguments of a benchmark that runs one fraudgraph job on a generated world (``what`` names its
    output folder): ``--seed``, ``--customers``, ``--out``, ``--json``."""
    ap.add_argument("--seed", type=int, default=None, help="world seed (default world.seed)")
    ap.add_argument("--customers", type=int, default=None, help="world size (default world.customers)")
    ap.add_argument("--out", default=None, help=f"keep the {what}'s output here (default: a temporary folder)")
    ap.add_argument("--json", dest="json_path", default=None)


def world_job_env(args) -> dict:
    """This process's environment with the world's ``--seed`` and ``--customers`` set for the job."""
    env = dict(os.environ)
    if args.seed is not None:
        env["FRAUDGRAPH_WORLD__SEED"] = str(args.seed)
    if args.customers is not None:
        env["FRAUDGRAPH_WORLD__CUSTOMERS"] = str(args.customers)
    return env


def run_job(command: list[str], env: dict, what: str):
    """Run ``fraudgraph COMMAND --json`` in a child process, not on a terminal (progress comes as log
    lines); exit naming ``what`` when it fails. Returns ``(its JSON report, its log, wall seconds)``."""
    import subprocess

    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fraudgraph.cli.main", *command, "--json"],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"the {what} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout), proc.stderr, wall


def table(rows: list[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def reference_world(settings, customers: int, out_dir: Path):
    """Generate a world of ``customers`` under ``out_dir/world`` and compute its pandas reference aggregates.

    Returns ``(world summary, cut-off epoch ms, {"customers", "links", "rejects"})``.
    """
    from etl.reference import reference_etl
    from fraudgraph.event_tags import EventTagger
    from fraudgraph.identity import IdentifierHasher
    from fraudgraph.synthetic.world import WorldGenerator
    from fraudgraph.timeutil import to_epoch_ms

    world = WorldGenerator(settings.world.model_copy(update={"customers": customers})).generate(
        out_dir / "world", progress=False)
    ref = reference_etl(out_dir / "world", IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    return world, to_epoch_ms(world["cutoff"]), ref


def temporary_graph_server(settings, state_dir: Path, backend: str = "gremlin"):
    """A started local graph server on a free loopback port with room for a 100k-customer graph (4 GB
    heap, not persisted, full JIT): ``gremlin`` is TinkerGraph on Gremlin Server, ``janusgraph`` is
    JanusGraph Server (in-memory storage, several worker threads).

    Returns ``(server, settings)``: the settings a store on that server uses (``store_settings``).
    """
    from localservers import GremlinServer, JanusGraphServer, free_port

    server: GremlinServer
    if backend == "janusgraph":
        js = settings.janusgraph_server.model_copy(update={"heap": "4g", "quick_jit": False})
        server = JanusGraphServer(js, state_dir=state_dir, port=free_port())
    else:
        gs = settings.gremlin_server.model_copy(update={"heap": "4g", "persist": False, "quick_jit": False})
        server = GremlinServer(gs, state_dir=state_dir, port=free_port())
    server.start()
    return server, server.store_settings(settings)


@contextmanager
def loaded_world(settings, customers: int, backend: str, out_dir: Path):
    """A world of ``customers`` loaded into a fresh graph of ``backend`` (sqlite, or a temporary
    ``gremlin`` or ``janusgraph`` server), with a seeded untrained model artifact under ``out_dir/model``.

    Yields ``(graph URI, cut-off epoch ms, reference frames, settings for a store on it)``; stops the
    server on exit.
    """
    from fraudgraph.graph import open_graph
    from tests.testing_support import frames_to_elements, untrained_artifact

    _, as_of, ref = reference_world(settings, customers, out_dir)
    server = None
    if backend != "sqlite":
        server, settings = temporary_graph_server(settings, out_dir / backend, backend)
    uri = server.url if server else f"sqlite:///{out_dir / 'graph.db'}"
    try:
        cust, links = frames_to_elements(ref["customers"], ref["links"])
        with open_graph(uri, settings) as store:
            store.upsert_customers(cust)
            store.upsert_links(links)
        # the deployed shape: training.deployed_refits members averaged
        untrained_artifact(ref["customers"], ref["links"], as_of, settings, out_dir / "model",
                           fanout_cap=settings.graph.neighbourhood_fanout_cap,
                           members=settings.training.deployed_refits)
        yield uri, as_of, ref, settings
    finally:
        if server is not None:
            server.stop()


def request_stats(store: object) -> dict[str, list[float]]:
    """A Gremlin store's ``{request name: [requests, seconds]}`` so far; empty for the embedded store."""
    from fraudgraph.graph.gremlin import GremlinIdentityGraph

    return store.client.request_stats if isinstance(store, GremlinIdentityGraph) else {}
