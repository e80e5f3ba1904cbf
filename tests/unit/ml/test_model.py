"""The RGCN learns a planted edge signal; artifacts round-trip; training is seeded; train/score CLIs run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fraudgraph.config import TrainingSettings, load_settings
from fraudgraph.evaluation.ranking import ranking_metrics
from fraudgraph.graph import customer_properties
from fraudgraph.graph.scoring_inputs import ScoringInputs
from fraudgraph.ml.artifact import ModelArtifact, gnn_scores
from fraudgraph.ml.baselines import BaselineModels
from fraudgraph.ml.features import build_graph_tensors
from fraudgraph.ml.scaling import FeatureScaler
from fraudgraph.schema import block_stands
from training.fitting import Split, fit_gnn

DAY = 86_400_000
AS_OF = 1_760_000_000_000
CFG = TrainingSettings.model_validate({**load_settings(environ={}).training.model_dump(), "hidden_dim": 16, "edge_hidden_dim": 8,
                                       "max_epochs": 120, "patience": 40, "learning_rate": 0.02, "dropout": 0.0,
                                       "mode": "full", "seed": 3})


def planted_world(n: int = 300):
    """Fraud lives only in the event-type mix of each customer's two edges.

    Every customer has one own device and the same hub IP, identical totals
    (3 logins, 3 payments) and identical times, so node features alone cannot
    tell fraud (1 in 4) from legitimate customers; the edges can: fraudsters log
    in on the device and pay over the IP, legitimate customers the other way round.
    """
    customers = pd.DataFrame({"customer_id": [f"c{i:04d}" for i in range(n)], "signup_ts": AS_OF - 100 * DAY})
    rows = []
    for i in range(n):
        fraud = i % 4 == 0
        base = {"customer_id": f"c{i:04d}", "first_seen": AS_OF - 50 * DAY, "last_seen": AS_OF - 10 * DAY,
                "event_count": 3}
        dev = {"count_login": 3} if fraud else {"count_payment": 3}
        ip = {"count_payment": 3} if fraud else {"count_login": 3}
        rows.append({**base, "kind": "device", "value_hash": f"d{i}", **dev})
        rows.append({**base, "kind": "ip", "value_hash": "hub", **ip})
    y = np.array([1 if i % 4 == 0 else 0 for i in range(n)])
    return customers, pd.DataFrame(rows).fillna(0), y


@pytest.fixture(scope="module")
def planted():
    customers, links, y = planted_world()
    tensors = build_graph_tensors(ScoringInputs(customers, links, AS_OF))
    order = tensors.index_of(customers["customer_id"])
    y_nodes = np.empty(len(y), dtype=int)
    y_nodes[order] = y
    idx = np.random.default_rng(0).permutation(len(y))
    split = Split(idx[:180], idx[180:240])
    scaler = FeatureScaler().fit(tensors)
    return tensors, scaler, y_nodes, split, idx[240:]


def test_edge_features_carry_the_planted_signal(planted):
    tensors, scaler, y, split, test = planted
    with_edges, _ = fit_gnn(tensors, scaler, y, split, CFG, use_edge_features=True)
    without, _ = fit_gnn(tensors, scaler, y, split, CFG, use_edge_features=False)
    s_edges = gnn_scores(with_edges, tensors, scaler, test, CFG)
    s_plain = gnn_scores(without, tensors, scaler, test, CFG)
    assert ranking_metrics(y[test], s_edges)["roc_auc"] > 0.95
    assert ranking_metrics(y[test], s_plain)["roc_auc"] < 0.65  # node features alone cannot see it

    # shuffle the edge features across edges: the trained edge path loses the signal
    nodes, edges = scaler.scaled(tensors)
    rng = np.random.default_rng(1)
    shuffled = {k: v[rng.permutation(len(v))] for k, v in edges.items()}
    s_shuffled = gnn_scores(with_edges, tensors, scaler, test, CFG, nodes=nodes, edges=shuffled)
    assert ranking_metrics(y[test], s_shuffled)["roc_auc"] < 0.7


def test_each_customer_sees_the_other_blocked_customers_of_its_identifiers_as_of_the_decision():
    """A block counts from its time until an unblock; only the fan-out cap's lowest ids are counted; a
    customer's own block is never in what reaches it (identifier -> customer edges count the others)."""
    day = 86_400_000
    customers = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e"],
        "signup_ts": [0, 0, 0, 0, 0],
        "blocked_at": [10 * day, 10 * day, 50 * day, np.nan, 5 * day],
        "unblocked_at": [np.nan, 20 * day, np.nan, np.nan, np.nan],
    })
    # device d1: a (blocked), b (blocked, unblocked since), c (blocked later), d; device d2: d, e (blocked, 3rd)
    links = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "d", "e"],
        "kind": ["device"] * 6,
        "value_hash": ["d1", "d1", "d1", "d1", "d2", "d2"],
        "first_seen": [day] * 6, "last_seen": [day] * 6, "event_count": [1] * 6,
    })

    def others_blocked(as_of_days: int, cap: int | None) -> dict[tuple[str, str], float]:
        t = build_graph_tensors(ScoringInputs(customers, links, as_of_days * day), fanout_cap=cap)
        ident, cust = (x.numpy() for x in t.graph.edges(etype="rev_has_device"))
        col = np.expm1(t.edge_features["rev_has_device"][:, -1]).round(6)
        forward = t.edge_features["has_device"][:, -1]
        assert (forward == 0).all()  # the customer -> identifier direction carries no block
        return {(t.identifier_ids["device"][i], t.customer_ids[c]): float(v) for i, c, v in zip(ident, cust, col)}

    at30 = others_blocked(30, None)  # a stands; b unblocked at day 20; c not yet
    assert at30[("d1", "a")] == 0.0 and at30[("d1", "b")] == 1.0 and at30[("d1", "d")] == 1.0
    assert at30[("d2", "d")] == 1.0 and at30[("d2", "e")] == 0.0  # e's own block never reaches e
    at15 = others_blocked(15, None)  # b still blocked at day 15
    assert at15[("d1", "c")] == 2.0 and at15[("d1", "a")] == 1.0 and at15[("d1", "b")] == 1.0
    at60 = others_blocked(60, None)  # c blocked at day 50
    assert at60[("d1", "d")] == 2.0 and at60[("d1", "c")] == 1.0
    capped = others_blocked(60, 1)  # d1 aggregates a only, d2 aggregates d only
    assert capped[("d1", "c")] == 1.0 and capped[("d1", "a")] == 0.0 and capped[("d2", "e")] == 0.0
    assert set(others_blocked(4, None).values()) == {0.0}


def test_a_customers_own_block_never_moves_its_own_inputs():
    """Block a customer: the features that reach it (its node, its edges both ways, its identifiers) stay."""
    day = 86_400_000
    customers = pd.DataFrame({"customer_id": ["a", "b", "c"], "signup_ts": [0, 0, 0],
                              "blocked_at": [np.nan, 3 * day, np.nan], "unblocked_at": [np.nan] * 3})
    links = pd.DataFrame({"customer_id": ["a", "b", "c", "a"], "kind": ["device", "device", "device", "card"],
                          "value_hash": ["d1", "d1", "d1", "k1"], "first_seen": [day] * 4, "last_seen": [day] * 4,
                          "event_count": [2] * 4})

    def seen_by_a(frame):
        t = build_graph_tensors(ScoringInputs(frame, links, 10 * day), fanout_cap=20)
        a = t.index_of(["a"])[0]
        out = [t.node_features["customer"][a]]
        for et in t.edge_features:
            src, dst = (x.numpy() for x in t.graph.edges(etype=et))
            mine = dst == a if et.startswith("rev_") else src == a
            out.append(t.edge_features[et][mine].ravel())
        out += [t.node_features[k].ravel() for k in ("device", "card")]
        return np.concatenate(out)

    blocked_a = customers.assign(blocked_at=[5 * day, 3 * day, np.nan])
    np.testing.assert_array_equal(seen_by_a(customers), seen_by_a(blocked_a))
    # and b's block does reach a: the signal is there, only a's own is left out
    unblocked_b = customers.assign(blocked_at=[np.nan, np.nan, np.nan])
    assert not np.array_equal(seen_by_a(customers), seen_by_a(unblocked_b))


def test_training_is_seeded(planted):
    tensors, scaler, y, split, test = planted
    cfg = CFG.model_copy(update={"max_epochs": 5})
    a, _ = fit_gnn(tensors, scaler, y, split, cfg, use_edge_features=True)
    b, _ = fit_gnn(tensors, scaler, y, split, cfg, use_edge_features=True)
    np.testing.assert_array_equal(gnn_scores(a, tensors, scaler, test, cfg),
                                  gnn_scores(b, tensors, scaler, test, cfg))


def test_a_warm_start_begins_from_the_earlier_fit_and_refuses_another_shape(planted):
    """A retrain's warm start: a fit begins from the earlier fit's weights (after one epoch at a learning rate
    that barely moves them, they and the scores are the earlier fit's; from random weights, they are not);
    weights of another shape are not loaded."""
    tensors, scaler, y, split, test = planted
    earlier, _ = fit_gnn(tensors, scaler, y, split, CFG.model_copy(update={"max_epochs": 60}), True)
    one_step = CFG.model_copy(update={"max_epochs": 1, "min_epochs": 1, "learning_rate": 1e-9})
    warm, fit = fit_gnn(tensors, scaler, y, split, one_step, True, init_state=earlier.state_dict())
    cold, cold_fit = fit_gnn(tensors, scaler, y, split, one_step, True)
    assert fit["warm_started"] and not cold_fit["warm_started"]
    learned = earlier.state_dict()
    assert all(np.allclose(w.numpy(), learned[k].numpy(), atol=1e-6) for k, w in warm.state_dict().items())
    assert not all(np.allclose(w.numpy(), learned[k].numpy(), atol=1e-3) for k, w in cold.state_dict().items())
    before = gnn_scores(earlier, tensors, scaler, test, CFG)
    np.testing.assert_allclose(gnn_scores(warm, tensors, scaler, test, CFG), before, atol=1e-5)

    wider = CFG.model_copy(update={"hidden_dim": 24, "max_epochs": 1, "min_epochs": 1})
    _, refused = fit_gnn(tensors, scaler, y, split, wider, True, init_state=earlier.state_dict())
    assert not refused["warm_started"]


def test_minibatch_training_with_neighbour_sampling(planted):
    tensors, scaler, y, split, test = planted
    cfg = CFG.model_copy(update={"mode": "minibatch", "batch_size": 64, "fanouts": [5, 5], "max_epochs": 30})
    model, fit = fit_gnn(tensors, scaler, y, split, cfg, use_edge_features=True)
    assert fit["mode"] == "minibatch"
    # scoring through sampled blocks (full neighbours) equals full-graph scoring
    full = gnn_scores(model, tensors, scaler, test, cfg, full_graph_max_edges=10**9)
    blocks = gnn_scores(model, tensors, scaler, test, cfg, full_graph_max_edges=0)
    np.testing.assert_allclose(full, blocks, atol=1e-5)
    assert ranking_metrics(y[test], full)["roc_auc"] > 0.9


def test_artifact_round_trips_to_identical_scores(planted, tmp_path, settings):
    tensors, scaler, y, split, test = planted
    model, _ = fit_gnn(tensors, scaler, y, split, CFG.model_copy(update={"max_epochs": 5}), True)
    before = gnn_scores(model, tensors, scaler, np.arange(len(y)), CFG)
    ModelArtifact.create(model, scaler, settings, 0.5, {"models": {}}, AS_OF).save(tmp_path / "m")
    loaded = ModelArtifact.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score_tensors(tensors), before)
    assert loaded.threshold == 0.5 and loaded.version.startswith("rgcn_edge-")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["features"]["edge"][0] == "events"
    # a model trained on other features is refused when loaded, not mis-scored
    from fraudgraph.ml import ModelArtifactError

    manifest["features"]["identifier"] = [*manifest["features"]["identifier"], "blocked_customers"]
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelArtifactError, match="identifier features"):
        ModelArtifact.load(tmp_path / "m")


def test_averaged_refits_score_the_mean_logit_and_round_trip(planted, tmp_path, settings):
    """The deployed model averages refits from different seeds: its logit is the members' mean, the
    members differ (the seeds matter), and the artifact reloads to identical scores."""
    from fraudgraph.ml.model import AveragedRGCN

    tensors, scaler, y, split, test = planted
    cfg = CFG.model_copy(update={"max_epochs": 5})
    members = [fit_gnn(tensors, scaler, y, split, cfg, True, epochs=5, seed=s)[0] for s in (3, 4)]
    each = [gnn_scores(m, tensors, scaler, np.arange(len(y)), cfg) for m in members]
    assert not np.allclose(each[0], each[1])
    mean_logit = np.mean([np.log(p) - np.log1p(-p) for p in each], axis=0)
    averaged = AveragedRGCN(members)
    scores = gnn_scores(averaged, tensors, scaler, np.arange(len(y)), cfg)
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-mean_logit)), atol=1e-5)
    ModelArtifact.create(averaged, scaler, settings, 0.5, {"models": {}}, AS_OF).save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "model_config.json").read_text())["members"] == 2
    # the artifact scores with the members fused into one model: the same logits up to rounding
    np.testing.assert_allclose(ModelArtifact.load(tmp_path / "m").score_tensors(tensors), scores, rtol=0, atol=1e-6)


@pytest.mark.parametrize("edge_features", [True, False])
def test_fused_members_give_the_mean_logit_on_full_graphs_and_sampled_blocks(planted, edge_features):
    """Online scoring runs an averaged model as one model with the members side by side: its logits
    are the members' mean on the whole graph and through neighbour-sampler blocks alike."""
    import torch

    from fraudgraph.ml.fusion import fused
    from fraudgraph.ml.model import AveragedRGCN

    _, _, y, split, _ = planted
    customers, links, _ = planted_world()
    rng = np.random.default_rng(1)  # customers that differ in their own features too (the planted ones do not)
    customers["signup_ts"] = AS_OF - rng.integers(1, 100, len(customers)) * DAY
    links["event_count"] = rng.integers(1, 9, len(links))
    tensors = build_graph_tensors(ScoringInputs(customers, links, AS_OF))
    scaler = FeatureScaler().fit(tensors)
    cfg = CFG.model_copy(update={"max_epochs": 3})
    members = [fit_gnn(tensors, scaler, y, split, cfg, edge_features, epochs=3, seed=s)[0] for s in (3, 4, 5)]
    averaged = AveragedRGCN(members).eval()
    one = fused(averaged)
    assert one.config["hidden"] == 3 * members[0].config["hidden"] and not one.training
    for limit in (10**9, 0):  # the full graph, then sampled blocks
        want = gnn_scores(averaged, tensors, scaler, np.arange(len(y)), cfg, full_graph_max_edges=limit)
        got = gnn_scores(one, tensors, scaler, np.arange(len(y)), cfg, full_graph_max_edges=limit)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        assert np.ptp(want) > 1e-3  # the members' scores differ between customers: not a constant
    nodes, edges = scaler.scaled(tensors)
    with torch.inference_mode():
        g = tensors.graph
        layers = members[0].config["layers"]
        torch.testing.assert_close(one([g] * layers, nodes, [edges] * layers),
                                   averaged([g] * layers, nodes, [edges] * layers), rtol=0, atol=1e-5)


@pytest.mark.parametrize("edge_features", [True, False])
def test_a_small_graph_scores_the_same_on_index_tensors_as_on_a_dgl_graph(planted, edge_features):
    """Online subgraphs run the layers on plain index tensors (no DGL graph is built): the same logits
    as DGL's message passing, with relations that have no edges and customers that have no links."""
    import torch

    from fraudgraph.ml import artifact
    from fraudgraph.ml.edge_lists import EdgeLists
    from fraudgraph.ml.fusion import fused
    from fraudgraph.ml.model import AveragedRGCN

    _, _, y, split, _ = planted
    customers, links, _ = planted_world()
    rng = np.random.default_rng(2)
    customers["signup_ts"] = AS_OF - rng.integers(1, 100, len(customers)) * DAY
    links["event_count"] = rng.integers(1, 9, len(links))
    loners = pd.DataFrame({"customer_id": ["z1", "z2"], "signup_ts": AS_OF - 3 * DAY})  # no links at all
    tensors = build_graph_tensors(ScoringInputs(pd.concat([customers, loners]), links, AS_OF), fanout_cap=40)
    assert isinstance(tensors.edge_lists, EdgeLists) and tensors._graph is None  # no DGL graph built yet
    scaler = FeatureScaler().fit(tensors)
    cfg = CFG.model_copy(update={"max_epochs": 3})
    members = [fit_gnn(tensors, scaler, y, split, cfg, edge_features, epochs=3, seed=s)[0] for s in (3, 4)]
    nodes, edges = scaler.scaled(tensors)
    for model in (members[0], fused(AveragedRGCN(members).eval())):
        layers = model.config["layers"]
        with torch.inference_mode():
            on_dgl = model([tensors.graph] * layers, nodes, [edges] * layers)
            on_lists = model([tensors.edge_lists] * layers, nodes, [edges] * layers)
        torch.testing.assert_close(on_lists, on_dgl, rtol=0, atol=1e-5)
        assert on_dgl.std() > 1e-3  # not a constant
        for layer in model.layers:  # a scoring model keeps its joined relation weights: the same logits
            layer.keep_relation_weights()
        with torch.inference_mode():
            kept = model([tensors.edge_lists] * layers, nodes, [edges] * layers)
        torch.testing.assert_close(kept, on_dgl, rtol=0, atol=1e-5)
        model.train()  # training again drops them
        assert all(layer.kept_relation_weights is None for layer in model.layers)
        model.eval()
        # without kept weights, the index tensor path passes gradients to every relation's weights
        model.zero_grad()
        model([tensors.edge_lists] * layers, nodes, [edges] * layers).sum().backward()
        grads = [layer.source_weight[e].weight.grad for layer in model.layers for e in layer.etypes]
        assert sum(g is not None and float(g.abs().sum()) > 0 for g in grads) >= len(model.layers[0].etypes) // 2
    # gnn_scores picks the index tensors for a graph this small, with only the edges its targets need
    assert tensors.edge_lists.num_edges() <= artifact.EDGE_LIST_MAX_EDGES
    want = torch.sigmoid(on_dgl).numpy()
    np.testing.assert_allclose(gnn_scores(model, tensors, scaler, np.arange(len(want)), cfg), want, atol=1e-6)
    for targets in ([0], [5, 1, 299], tensors.index_of(["z1", "c0004"]), rng.permutation(len(want))[:40]):
        targets = np.asarray(targets)
        np.testing.assert_allclose(gnn_scores(model, tensors, scaler, targets, cfg), want[targets], atol=1e-6)
    blocks, _ = tensors.edge_lists.blocks_for("customer", torch.as_tensor([0]), 2)
    assert blocks[1].num_edges() < blocks[0].num_edges() < tensors.edge_lists.num_edges()  # pruned


@pytest.mark.slow
def test_train_and_score_commands_on_a_generated_world(small_world, small_world_graph, small_world_snapshot,
                                                       tmp_path, settings):
    """labels -> train (with truth) -> score on the small world, through the CLI."""
    from click.testing import CliRunner

    from fraudgraph.cli.main import cli
    from fraudgraph.graph import open_graph

    uri, cutoff = small_world_graph
    truth = str(small_world / "truth" / "ground_truth.parquet")
    run = CliRunner()
    assert run.invoke(cli, ["labels", "--graph", uri, "--as-of", cutoff, "--out", str(tmp_path / "labels")]).exit_code == 0
    cfg = tmp_path / "fast.yaml"
    # a refit budget the small world exceeds: the deployed refit is one fit on a sample of the points
    cfg.write_text("training:\n  max_epochs: 4\n  hidden_dim: 16\n  min_positives: 2\n  bootstrap_rounds: 20\n"
                   "  deployed_refit_budget: 500\n  gbdt:\n    max_iter: 30\n")
    result = run.invoke(cli, ["train", "--snapshot", str(small_world_snapshot), "--labels", str(tmp_path / "labels"),
                              "--out", str(tmp_path / "model"), "--truth", truth, "--config", str(cfg), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"rgcn_edge", "rgcn", "gbdt", "gbdt_own", "guilt_by_association", "rules"}
    assert metrics["split"]["by_decision_time"] and metrics["split"]["examples"]["test"] > 0
    for m in metrics["models"].values():
        assert {"pr_auc", "roc_auc", "recall_at_precision_85", "precision_at_recall_50"} <= set(m["labels"])
        assert {"pr_auc", "roc_auc", "recall_at_precision_85", "precision_at_recall_50"} <= set(m["truth"])
    assert 0 <= metrics["threshold"] <= 1
    # the consumer deploys the refit on every label known at as-of, never fewer fraudsters than training saw
    deployed = metrics["deployed"]
    assert deployed["fraud_customers"] >= metrics["split"]["labels"]["train"]["fraud_customers"]
    assert deployed["epochs"] * deployed["decision_points_eligible"] > 500 and deployed["refits_configured"] == 3
    assert deployed["refits"] == 1 and deployed["epochs"] * deployed["decision_points"] <= 500
    assert deployed["decision_points"] < deployed["decision_points_eligible"] and deployed["legit_customers"] > 0
    assert deployed["validation_customers"] > 0 and metrics["threshold"] == deployed["threshold"]
    # the threshold flags as many validation customers as the labels call fraud (saved beside it)
    val = pd.read_parquet(tmp_path / "model" / "validation_scores.parquet")
    assert len(val) == deployed["validation_customers"]
    w = val["population_weight"]
    rate = w[val["outcome"] == 1].sum() / w.sum()
    assert metrics["threshold_policy"] == {"policy": "labelled_fraud_rate", "flag_rate": round(rate, 6)}
    threshold = ModelArtifact.load(tmp_path / "model").threshold  # unrounded
    assert round(threshold, 6) == metrics["threshold"]
    assert w[val["score"] >= threshold].sum() / w.sum() <= rate + 1e-9
    below = val.loc[val["score"] < threshold, "score"]
    if len(below):  # the next lower score would flag more than the rate
        assert w[val["score"] >= below.max()].sum() / w.sum() > rate
    # the baselines are saved beside it, so that the live replay judges each of them too
    assert set(BaselineModels.load(tmp_path / "model").gnns) == {"rgcn_edge_validated", "rgcn"}
    assert set(BaselineModels.load(tmp_path / "model").gbdts) == {"gbdt", "gbdt_deployed", "gbdt_own"}
    for name in ("model.pt", "feature_stats.json", "manifest.json", "pr_curves.png", "summary.md"):
        assert (tmp_path / "model" / name).exists(), name

    result = run.invoke(cli, ["score", "--graph", uri, "--model", str(tmp_path / "model"), "--out",
                              str(tmp_path / "scores"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    decisions = pd.read_parquet(tmp_path / "scores" / "decisions.parquet")
    assert len(decisions) == summary["customers"]
    assert set(decisions["decision"]) <= {"block", "review", "allow", "blocked"}
    assert sum(summary["decisions"].values()) == len(decisions)
    # a customer whose block stands as of the scoring is decided blocked, not scored
    with open_graph(uri, settings) as store:
        frame = store.customers_frame()
    stands = block_stands(pd.to_numeric(frame["blocked_at"], errors="coerce"),
                          pd.to_numeric(frame.get("unblocked_at"), errors="coerce"), summary["as_of_ms"])
    blocked_ids = set(frame.loc[stands, "customer_id"])
    assert blocked_ids and blocked_ids == set(decisions.loc[decisions["decision"] == "blocked", "customer_id"])
    assert decisions.loc[decisions["decision"] == "blocked", "score"].isna().all()
    row = decisions.dropna(subset=["score"]).sort_values("score").iloc[-1]
    with open_graph(uri, settings) as store:
        props = customer_properties(store, row["customer_id"])
    assert props["decision"] == row["decision"] and props["model_version"] == summary["model_version"]
    assert abs(props["score"] - row["score"]) < 1e-5
    with open_graph(uri, settings) as store:
        blocked_props = customer_properties(store, sorted(blocked_ids)[0])
    assert blocked_props["decision"] == "blocked" and "score" not in blocked_props


@pytest.mark.slow
def test_train_refuses_too_few_fraud_labels_and_writes_no_model(small_world, small_world_graph, small_world_snapshot,
                                                                tmp_path):
    from click.testing import CliRunner

    from fraudgraph.cli.main import cli

    uri, cutoff = small_world_graph
    run = CliRunner()
    assert run.invoke(cli, ["labels", "--graph", uri, "--as-of", cutoff, "--out", str(tmp_path / "labels")]).exit_code == 0
    cfg = tmp_path / "strict.yaml"
    cfg.write_text("training:\n  min_positives: 100000\n")
    result = run.invoke(cli, ["train", "--snapshot", str(small_world_snapshot), "--labels", str(tmp_path / "labels"),
                              "--out", str(tmp_path / "model"), "--config", str(cfg)])
    assert result.exit_code == 2
    assert "training.min_positives=100000" in result.output and "train:" in result.output
    assert not (tmp_path / "model" / "metrics.json").exists() and not (tmp_path / "model" / "model.pt").exists()

    result = run.invoke(cli, ["train", "--graph", uri, "--labels", str(tmp_path / "labels"), "--out",
                              str(tmp_path / "model2")])
    assert result.exit_code == 2 and "link events" in result.output


@pytest.mark.parametrize("on", ["dgl", "edge_lists"])
def test_max_pooling_keeps_one_link_that_a_mean_over_many_dilutes(on):
    """Two customers hold the same distinctive link (a fresh device, say); the second also holds nine
    plain ones. With only the edge messages switched on, mean pooling tells the two apart (the nine
    dilute the one), and the maximum part of ``mean_max`` gives both the same message."""
    import torch

    from fraudgraph.ml._dgl_compat import import_dgl
    from fraudgraph.ml.edge_lists import EdgeLists
    from fraudgraph.ml.model import RelationalMessagePassing

    dgl = import_dgl()
    etypes = [("device", "uses", "customer")]
    src = torch.arange(11)
    dst = torch.tensor([0] + [1] * 10)
    edges = {"uses": torch.zeros(11, 3)}
    edges["uses"][0] = edges["uses"][1] = torch.tensor([5.0, -2.0, 3.0])  # the distinctive link, on both
    h = {"device": torch.randn(11, 4), "customer": torch.randn(2, 4)}
    graph = EdgeLists({etypes[0]: (src, dst)}, {"device": 11, "customer": 2})
    if on == "dgl":
        graph = dgl.heterograph({etypes[0]: (src, dst)}, {"device": 11, "customer": 2})
    torch.manual_seed(0)
    out = {}
    for pooling in ("mean", "mean_max"):
        layer = RelationalMessagePassing(4, 6, etypes, 3, 5, True, 0.0, activation=False, edge_pooling=pooling)
        with torch.no_grad():  # only the edge messages: no source or self term, no mean term for mean_max
            for lin in (*layer.source_weight.values(), *layer.self_weight.values()):
                lin.weight.zero_()
                if lin.bias is not None:
                    lin.bias.zero_()
            layer.edge_encoder["uses"].net[0].bias.zero_()
            if pooling == "mean_max":
                layer.edge_weight["uses"].weight.zero_()
        out[pooling] = layer.eval()(graph, h, edges)["customer"]
    assert not torch.allclose(out["mean"][0], out["mean"][1])
    assert out["mean_max"].abs().sum() > 0
    torch.testing.assert_close(out["mean_max"][0], out["mean_max"][1])


def test_a_saved_config_without_edge_pooling_builds_the_mean_pooling_model():
    """Models saved before ``edge_pooling`` existed load with the pooling they were trained with."""
    from fraudgraph.ml.model import rgcn_from_config

    config = {"node_dims": {"customer": 3, "device": 2}, "edge_dim": 4,
              "canonical_etypes": [("customer", "has_device", "device"), ("device", "rev_has_device", "customer")],
              "hidden": 8, "edge_hidden": 4, "layers": 2, "dropout": 0.0, "use_edge_features": True,
              "target_ntype": "customer"}
    old = rgcn_from_config(config)
    assert old.config["edge_pooling"] == "mean"
    assert not any("edge_max_weight" in name for name, _ in old.named_parameters())
    new = rgcn_from_config({**config, "edge_pooling": "mean_max", "members": 2})
    assert any("edge_max_weight" in name for name, _ in new.named_parameters())
    with pytest.raises(ValueError, match="edge_pooling"):
        rgcn_from_config({**config, "edge_pooling": "sum"})
