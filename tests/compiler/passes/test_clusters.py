"""Token clusters in the graph (ClusCa): k-means against a plainly written one, the per-cluster pick,
propagation, and what the plan declares for them before step one."""

import pytest
import torch

from c4d_compile import c4d_backend, get_policy
from c4d_compile.compiler.passes import clusters
from c4d_compile.compiler.passes.clusters import cdist_l1, kmeans, l1_per_centroid, one_per_cluster, propagate
from c4d_compile.errors import InvalidValueError
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


def plain_kmeans(points, centroids, iterations=10):
    """Lloyd's algorithm with L1 distance, one token at a time."""
    centroids = centroids.clone()
    for _ in range(iterations + 1):
        labels = torch.tensor([min(range(len(centroids)), key=lambda c: (p - centroids[c]).abs().sum().item())
                               for p in points])
        if _ == iterations:
            return centroids, labels
        for c in range(len(centroids)):
            if (labels == c).any():
                centroids[c] = points[labels == c].mean(0)


def test_kmeans_matches_a_plain_one_and_warm_starts():
    torch.manual_seed(0)
    stream = torch.randn(2, 24, 6)  # (batch, tokens, channels): each token clustered on both samples' features
    points = stream.transpose(0, 1).reshape(24, 12)
    centroids, labels = kmeans(stream, 1, torch.zeros(5, 12))
    first = points[torch.linspace(0, 23, 5).long()]  # no centroids yet: evenly spaced tokens
    expected_centroids, expected_labels = plain_kmeans(points, first)
    assert torch.equal(labels, expected_labels)
    torch.testing.assert_close(centroids, expected_centroids)
    # warm start: from converged centroids nothing moves
    again, labels_again = kmeans(stream, 1, centroids)
    torch.testing.assert_close(again, centroids)
    assert torch.equal(labels_again, labels)
    moved = stream + 0.5 * torch.randn_like(stream)
    expected = plain_kmeans(moved.transpose(0, 1).reshape(24, 12), centroids)
    assert torch.equal(kmeans(moved, 1, centroids)[1], expected[1])


def test_one_token_per_cluster_drawn_by_the_noise():
    labels = torch.tensor([2, 0, 0, 2, 1, 0, 2])
    noise = torch.tensor([0.1, 0.9, 0.3, 0.8, 0.5, 0.95, 0.2])
    assert one_per_cluster(labels, noise, 4).tolist() == [5, 4, 3, 0]  # cluster 3 is empty: token 0
    fresh = torch.ones(1, 3, 2) * torch.tensor([10.0, 20.0, 30.0])[None, :, None]
    moved = propagate(torch.zeros(1, 7, 2), fresh, labels, 1, 0.25)
    assert moved[0, :, 0].tolist() == [7.5, 2.5, 2.5, 7.5, 5.0, 2.5, 7.5]


def test_the_plan_declares_the_cluster_state_and_the_full_step_clusters():
    spec = get_tiny_model("flux")
    backend = c4d_backend("clusca", lowering="eager", clusters=4)
    model = torch.compile(spec.build(), backend=backend, fullgraph=True)
    with torch.no_grad():
        model(**spec.make_inputs())
    plan = backend.plan
    state = {e.name: e for e in plan.state}
    assert {space.tokens for space in plan.tokens.clustered} == {8, 16}
    assert state["tokens.16.centroids"].shape == (4, 32) and state["tokens.16.labels"].shape == (16,)
    assert plan.bytes_by_kind["clusters"] == (4 * 32 * 4 + 16 * 8) + (4 * 32 * 4 + 8 * 8)
    full = backend.rewrite.variants["full"]
    assert full.inputs == ("tokens.8.centroids", "tokens.16.centroids")
    assert sum(n.target is kmeans for n in full.gm.graph.nodes) == 2
    assert "clusters: the 16 tokens of" in plan.describe()


def test_token_options_are_validated():
    with pytest.raises(InvalidValueError, match="propagation"):
        get_policy("duca", propagation=0.1)  # random rows have no clusters to propagate over
    with pytest.raises(InvalidValueError, match="clusters"):
        get_policy("clusca", clusters=0)
    with pytest.raises(InvalidValueError, match="one of"):
        get_policy("clusca", selection="attention")


def test_the_distances_are_cdist_eagerly_and_per_centroid_when_traced(monkeypatch):
    """The two forms give the same clustering; a traced call (fake tensors, as inductor and the ONNX exporter
    trace) never reaches cdist, an eager one does."""
    torch.manual_seed(0)
    stream = torch.randn(2, 40, 6)
    torch.testing.assert_close(l1_per_centroid(stream[0], stream[1, :5]), cdist_l1(stream[0], stream[1, :5]))
    eager = kmeans(stream, 1, torch.zeros(4, 12))
    for a, b in zip(eager, kmeans(stream, 1, torch.zeros(4, 12), l1=l1_per_centroid)):
        torch.testing.assert_close(a, b)
    called = []
    monkeypatch.setattr(clusters, "cdist_l1", lambda *args: called.append(True) or cdist_l1(*args))
    kmeans(stream, 1, torch.zeros(4, 12))
    assert called
    called.clear()
    with torch._subclasses.FakeTensorMode() as mode:
        centroids, labels = kmeans(mode.from_tensor(stream), 1, mode.from_tensor(torch.zeros(4, 12)))
    assert not called and labels.shape == (40,) and centroids.shape == (4, 12)
