"""Token-subset caching against the method written the way the reference code does it: forward hooks
on the attention / MLP modules keep Taylor factors (order 0: plain reuse, DuCa; order 1: TaylorSeer
with ToCa-style fresh tokens), and on partial steps the MLP modules are run on the chosen rows of
their own input, which overwrite the order-0 factor there (ToCa arXiv 2410.05317, DuCa 2412.18911).
ClusCa (arXiv 2509.10312): a hook on the last block clusters its output at full steps (labels given by
the library's k-means, itself checked against a plain one in ``tests/compiler/passes/test_clusters.py``); each
partial step takes one token per cluster by the same seeded draws, written plainly here. ToCa (score
selection): each token's importance is the norm of its token-local module outputs at the full step, summed
and L2-normalised; a partial step takes the top rows by importance plus weighted staleness, counted here."""


import pytest
import torch
from support.sampling import loop, sample
from support.taylor import taylor_forecast, updated_factors

from c4d_compile import c4d_backend
from c4d_compile.compiler.passes.clusters import kmeans
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

# (module, token-local, its token count) per branch, in the order the reference needs them
BRANCHES = {
    "dit": lambda m: [(mod, local) for b in m.transformer_blocks for mod, local in ((b.attn1, False), (b.ff, True))],
    "flux": lambda m: [(mod, local) for b in m.transformer_blocks
                       for mod, local in ((b.attn, False), (b.ff, True), (b.ff_context, True))]
    + [(b.proj_out, False) for b in m.single_transformer_blocks],
}


# the module whose output holds each token space after the last block (what ClusCa clusters)
LAST_BLOCK = {"dit": lambda m: m.transformer_blocks[-1], "flux": lambda m: m.single_transformer_blocks[-1]}


class HookedTokenSubset:
    def __init__(self, branches, order, interval, warmup, ratio, every, seed=0, clusters=None, gamma=0.0, site=None,
                 anchored=False, staleness_weight=None):
        self.order, self.interval, self.warmup, self.ratio, self.every = order, interval, warmup, ratio, every
        self.anchored = anchored  # the fresh rows are the forecast at their step, not the order-0 factor
        self.clusters, self.gamma = clusters, gamma
        self.staleness_weight = staleness_weight  # score selection (ToCa) when set
        self.importance, self.staleness = {}, {}
        self.centroids, self.labels = {}, {}
        if site is not None:
            site.register_forward_hook(self._cluster)
        self.step, self.last_full, self.prev_full = -1, None, None
        self.factors: dict[tuple[int, int], dict[int, torch.Tensor]] = {}
        self.generator = torch.Generator().manual_seed(seed)
        self.kinds = []
        for index, (module, local) in enumerate(branches):
            module.register_forward_hook(self._hook(index, local))

    def begin_step(self, token_counts):
        self.step += 1
        s = self.step
        if s < self.warmup or self.last_full is None or s - self.last_full >= self.interval:
            self.kind = "full"
            self.prev_full, self.last_full = self.last_full, s
        else:
            distance = s - self.last_full
            self.kind = "partial" if distance % self.every == 1 % self.every else "cached"
        self.rows = {}
        if self.kind == "full":
            self.importance, self.staleness = {}, {n: torch.zeros(n) for n in token_counts}
        if self.kind == "partial":  # one draw per token space, fewest tokens first
            for n in sorted(token_counts):
                if self.staleness_weight is not None:
                    raw = self.importance[n]
                    total = raw / raw.norm() + self.staleness_weight * self.staleness[n]
                    k = min(n, max(1, round(self.ratio * n)))
                    self.rows[n] = torch.topk(total, k).indices.sort().values
                    self.staleness[n] = self.staleness[n] + 1
                    self.staleness[n][self.rows[n]] = 0
                elif self.clusters:
                    self.rows[n] = self._one_per_cluster(self.labels[n], torch.rand(n, generator=self.generator))
                else:
                    k = min(n, max(1, round(self.ratio * n)))
                    self.rows[n] = torch.randperm(n, generator=self.generator)[:k].sort().values
        self.kinds.append(self.kind)

    def _one_per_cluster(self, labels, noise):
        rows = []
        for c in range(self.clusters):
            members = (labels == c).nonzero()[:, 0].tolist()
            rows.append(max(members, key=lambda j: noise[j]) if members else 0)
        return torch.tensor(rows)

    def _cluster(self, module, args, output):
        if self.kind != "full":
            return
        for value in output if isinstance(output, tuple) else (output,):
            n = value.shape[1]
            k = min(n, self.clusters)
            start = self.centroids.get(n, torch.zeros(k, value[0].numel() // n * value.shape[0]))
            self.centroids[n], self.labels[n] = kmeans(value, 1, start)

    def _hook(self, index, local):
        def hook(module, args, output):
            outputs = output if isinstance(output, tuple) else (output,)
            result = []
            for j, value in enumerate(outputs):
                key = (index, j)
                if self.kind == "full":
                    if local and self.staleness_weight is not None:  # the norm of each token's row
                        norms = value.float().pow(2).sum((0, 2)).sqrt()
                        n = value.shape[1]
                        self.importance[n] = self.importance.get(n, 0) + norms
                    self.factors[key] = updated_factors(self.factors.get(key, {}), value, self.order,
                                                        self.last_full - (self.prev_full or 0))
                    result.append(value)
                    continue
                factors = self.factors[key]
                if self.kind == "partial" and local:  # fresh rows of the module's own input
                    n = args[0].shape[1]
                    rows = self.rows[n]
                    fresh = module.forward(args[0][:, rows])
                    if self.anchored:  # minus what the higher-order terms add at this step
                        drift = taylor_forecast(factors, self.step - self.last_full) - factors[0]
                        fresh = fresh - drift[:, rows]
                    if self.gamma:  # every token moves toward its cluster's fresh row
                        factors[0] = self.gamma * fresh[:, self.labels[n]] + (1 - self.gamma) * factors[0]
                    factors[0] = factors[0].index_copy(1, rows, fresh)
                result.append(taylor_forecast(factors, self.step - self.last_full))
            return tuple(result) if isinstance(output, tuple) else result[0]

        return hook


def compare(spec, backend, make_reference, steps) -> list[str]:
    """Sample with the compiled model and with a fresh model hooked by ``make_reference(model, token counts)``;
    the outputs agree at every step and one graph served every kind of step. Returns the kinds of step."""
    _, got = sample(torch.compile(spec.build(), backend=backend, fullgraph=True), spec, num_steps=steps)
    tokens = {t.tokens for t in backend.plan.partial}
    model = spec.build()
    reference = make_reference(model)

    def call(**kwargs):
        reference.begin_step(tokens)
        return model(**kwargs)

    _, expected = sample(call, spec, num_steps=steps)
    (context,) = backend.stats().last.contexts.values()
    assert context.kinds == reference.kinds
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert backend._graphs == 1 and len(backend.runtimes) == 1  # one graph for every kind of step
    return context.kinds


@pytest.mark.parametrize("name, policy, order, every, anchor", [
    ("dit", "duca", 0, 2, "order0"), ("flux", "duca", 0, 2, "order0"), ("flux", "taylorseer", 1, 1, "order0"),
    ("dit", "taylorseer", 1, 1, "step"),
])
def test_partial_steps_match_the_hooked_reference(name, policy, order, every, anchor):
    spec = get_tiny_model(name)
    ratio, steps = 0.25, 10
    options = {"order": order} if order else {}
    backend = c4d_backend(policy, lowering="eager", interval=3, warmup=1, token_ratio=ratio, partial_every=every,
                          variable="step", anchor=anchor, **options)
    kinds = compare(spec, backend, lambda model: HookedTokenSubset(BRANCHES[name](model), order, 3, 1, ratio, every,
                                                                   anchored=anchor == "step"), steps)
    assert "partial" in kinds and ("cached" in kinds) == (every == 2)


@pytest.mark.parametrize("name", ["dit", "flux"])
def test_toca_matches_the_hooked_reference(name):
    spec = get_tiny_model(name)
    ratio, weight, steps = 0.25, 0.2, 12  # a large weight, so staleness moves the choice
    backend = c4d_backend("toca", lowering="eager", interval=4, warmup=1, token_ratio=ratio, staleness_weight=weight)
    kinds = compare(spec, backend, lambda model: HookedTokenSubset(BRANCHES[name](model), 0, 4, 1, ratio, 1,
                                                                   staleness_weight=weight), steps)
    assert kinds.count("partial") == 9


def test_partial_rows_change_the_output_and_the_draws_are_seeded():
    spec = get_tiny_model("dit")
    runs = {}
    for key, options in {"cached": {}, "seed0": {"token_ratio": 0.25}, "seed0b": {"token_ratio": 0.25},
                         "seed1": {"token_ratio": 0.25, "token_seed": 1}}.items():
        backend = c4d_backend("taylorseer", lowering="eager", interval=3, warmup=1, **options)
        runs[key], _ = sample(torch.compile(spec.build(), backend=backend, fullgraph=True), spec, num_steps=8)
    assert torch.equal(runs["seed0"], runs["seed0b"])
    assert not torch.equal(runs["seed0"], runs["seed1"]) and not torch.equal(runs["seed0"], runs["cached"])


@pytest.mark.parametrize("name, anchor", [("dit", "order0"), ("flux", "step")])
def test_clusca_matches_the_hooked_reference(name, anchor):
    spec = get_tiny_model(name)
    clusters, gamma, steps = 4, 0.3, 10  # a large γ, so propagation shows in the outputs
    backend = c4d_backend("clusca", lowering="eager", interval=3, warmup=1, clusters=clusters, propagation=gamma,
                          anchor=anchor)
    kinds = compare(spec, backend, lambda model: HookedTokenSubset(
        BRANCHES[name](model), 1, 3, 1, None, 1, clusters=clusters, gamma=gamma, site=LAST_BLOCK[name](model),
        anchored=anchor == "step"), steps)
    assert kinds.count("partial") == 6


@pytest.mark.parametrize("preset", ["clusca", "duca", "toca"])
def test_fifty_steps_and_a_second_generation_compile_one_graph(preset):
    spec = get_tiny_model("flux")
    backend = c4d_backend(preset, lowering="eager", num_steps=50)
    call = torch.compile(spec.build(), backend=backend, fullgraph=True)
    loop(call, spec, 50)
    loop(call, spec, 50, spec.make_inputs(seed=1))
    assert backend._graphs == 1
    (context,) = backend.stats().contexts.values()
    assert context.steps == 100 and context.by_kind["partial"] >= 20 and context.by_kind["full"] >= 10
