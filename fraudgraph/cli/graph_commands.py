"""``fraudgraph graph ...`` (inspect, export, refresh summaries) and the local graph servers."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from fraudgraph.cli.context import AppContext, cli, common_options, pass_app

log = logging.getLogger("fraudgraph.cli")


# --------------------------------------------------------------------- graph
@cli.group()
def graph() -> None:
    """Inspect the identity graph."""


def _stats_text(stats: dict[str, Any]) -> str:
    lines = ["vertices:"]
    lines += [f"  {k:<10} {v:>12,}" for k, v in stats["vertices"].items()]
    lines.append("edges:")
    lines += [f"  {k:<10} {v:>12,}" for k, v in stats["edges"].items()]
    return "\n".join(lines)


@graph.command("stats")
@click.option("--graph", "graph_uri", default=None, help="Graph URI (default graph.uri).")
@common_options
@pass_app
def graph_stats(app: AppContext, graph_uri: str | None) -> None:
    """Vertex and edge counts per label."""
    from fraudgraph.graph import open_graph

    with open_graph(graph_uri, app.settings, create=False) as store:
        app.emit(store.stats(), _stats_text)


@graph.command("export")
@click.option("--graph", "graph_uri", default=None, help="Graph URI (default graph.uri).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@common_options
@pass_app
def graph_export(app: AppContext, graph_uri: str | None, out_dir: str) -> None:
    """Export vertices and edges as a Parquet snapshot."""
    from fraudgraph.graph import open_graph
    from fraudgraph.graph.snapshot import export_graph

    with open_graph(graph_uri, app.settings, create=False) as store:
        paths = export_graph(store, out_dir)
    app.emit({k: str(v) for k, v in paths.items()})


@graph.command("refresh-summaries")
@click.option("--graph", "graph_uri", default=None, help="Graph URI (default graph.uri).")
@common_options
@pass_app
def graph_refresh_summaries(app: AppContext, graph_uri: str | None) -> None:
    """Recompute every customer's and identifier's kept link summary (after a bulk load that bypassed
    fraudgraph, such as Neptune's loader)."""
    from fraudgraph.graph import open_graph

    with open_graph(graph_uri, app.settings, create=False) as store:
        app.emit(store.summaries.rebuild(progress=True))


# ------------------------------------------------------------ gremlin-server
@cli.command("gremlin-server")
@click.argument("action", type=click.Choice(["start", "stop", "status"]))
@click.option("--port", type=int, default=None, help="Port (default gremlin_server.port).")
@click.option("--state-dir", default=None, help="State folder (default gremlin_server.state_dir).")
@click.option(
    "--engine",
    type=click.Choice(["tinkergraph", "janusgraph"]),
    default="tinkergraph",
    help="TinkerGraph (Apache TinkerPop Gremlin Server) or JanusGraph Server (janusgraph_server.*).",
)
@common_options
@pass_app
def gremlin_server(app: AppContext, action: str, port: int | None, state_dir: str | None, engine: str) -> None:
    """Start, stop or report a local Gremlin Server on loopback (TinkerGraph or JanusGraph; a JanusGraph
    with janusgraph_server.storage: cql starts and stops its Cassandra, cassandra_server.*, with it)."""
    from localservers import CassandraServer, GremlinServer, JanusGraphServer, ServerError

    cassandra = None
    if engine == "janusgraph" and app.settings.janusgraph_server.storage == "cql":
        cassandra = CassandraServer(app.settings.cassandra_server)
    server = (
        JanusGraphServer(
            app.settings.janusgraph_server,
            state_dir=state_dir,
            port=port,
            cql=(cassandra.host, cassandra.port) if cassandra else None,
        )
        if engine == "janusgraph"
        else GremlinServer(app.settings.gremlin_server, state_dir=state_dir, port=port)
    )
    try:
        if cassandra is not None and action == "start":
            cassandra.start()
        status = getattr(server, action)()
        if cassandra is not None:
            status["cassandra"] = cassandra.stop() if action == "stop" else cassandra.status()
    except ServerError as exc:
        raise click.ClickException(str(exc)) from None
    status["url"] = server.url
    app.emit(
        status,
        lambda s: (
            f"{engine}: {'running' if s['running'] else 'stopped'}"
            f"{' and answering' if s['answering'] else ''} at {s['url']}" + (f" (pid {s['pid']})" if s["pid"] else "")
        ),
    )
    if action == "status" and not status["running"]:
        sys.exit(3)
