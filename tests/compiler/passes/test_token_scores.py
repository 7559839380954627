"""Score selection (ToCa): the FULL variant writes each token's importance and resets its staleness; a partial
call recomputes the top rows by importance plus staleness and counts the staleness on. Checked against the
same quantities written plainly from the FULL variant's own feature values."""

import pytest
import torch
from support.variants import ROUNDING, capture_graph, run_full

from c4d_compile import c4d_backend
from c4d_compile.compiler.passes.token_scores import importance, top_rows
from c4d_compile.compiler.tokens.score_rows import ScoreRows
from c4d_compile.runtime.state_names import WEIGHTS, history_names, refreshed_name, score_name, staleness_name
from c4d_compile.runtime.step_program import VariantKind
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


def test_importance_and_top_rows_written_plainly():
    a, b = torch.randn(2, 6, 4), torch.randn(2, 3, 6)  # token dim 1 and 2
    raw = [sum(float(a[i, j].pow(2).sum()) for i in range(2)) ** 0.5 + sum(float(b[i, :, j].pow(2).sum())
                                                                             for i in range(2)) ** 0.5
           for j in range(6)]
    norm = sum(r * r for r in raw) ** 0.5
    torch.testing.assert_close(importance([a, b], [1, 2]), torch.tensor([r / norm for r in raw]))
    score, staleness = torch.tensor([0.5, 0.1, 0.4, 0.3]), torch.tensor([0.0, 3.0, 0.0, 1.0])
    rows, after = top_rows(score, staleness, 0.05, 2)  # 0.5, 0.25, 0.4, 0.35: staleness lifts row 3 over row 1
    ranked = sorted(range(4), key=lambda j: -(score[j] + 0.05 * staleness[j]))[:2]
    assert rows.tolist() == sorted(ranked)
    assert after.tolist() == [0.0 if j in ranked else staleness[j].item() + 1 for j in range(4)]


@pytest.mark.parametrize("name", ["dit", "flux"])
def test_full_scores_and_partial_picks_the_top_rows(name):
    spec = get_tiny_model(name)
    gm, example_inputs = capture_graph(spec.build().eval(), **spec.make_inputs())
    backend = c4d_backend("toca", lowering="eager", token_ratio=0.25, strict=True)
    backend(gm, example_inputs)
    plan = backend.plan
    assert isinstance(plan.tokens, ScoreRows) and plan.tokens.staleness_weight == 0.0625
    assert plan.tokens.host_inputs() == {}  # the graph ranks the tokens: the host draws nothing
    _, values = run_full(backend, example_inputs)
    for n in plan.tokens.token_spaces:  # importance from the branches' own values, staleness reset
        branches = [b for b in plan.partial if b.tokens == n]
        expected = importance([values[f"{b.feature}@0"] for b in branches], [dict(b.body)[b.feature] for b in branches])
        torch.testing.assert_close(values[score_name(n)], expected)
        assert torch.equal(values[staleness_name(n)], torch.zeros(n))

    stale = {n: torch.arange(n, dtype=torch.float32) % 3 for n in plan.tokens.token_spaces}  # some tokens waited longer
    partial = backend.rewrite.variants[VariantKind.PARTIAL]
    named = {WEIGHTS: torch.ones(plan.num_slots)}
    for f in plan.features:
        named.update(dict.fromkeys(history_names(f, plan.num_slots), values[history_names(f, 1)[0]]))
        named[refreshed_name(f.name)] = torch.zeros_like(values[history_names(f, 1)[0]])
    for n in plan.tokens.token_spaces:
        named[score_name(n)], named[staleness_name(n)] = values[score_name(n)], stale[n]
    with torch.no_grad():
        outs = partial.gm(*example_inputs, *(named[name] for name in partial.inputs))
    written = dict(zip(partial.outputs, outs[partial.num_outputs:]))
    rows = dict(plan.token_rows)
    for n in plan.tokens.token_spaces:
        total = values[score_name(n)] + 0.0625 * stale[n]
        top = sorted(sorted(range(n), key=lambda j: -float(total[j]))[: rows[n]])
        expected = [0.0 if j in top else float(stale[n][j]) + 1 for j in range(n)]
        assert written[staleness_name(n)].tolist() == expected
        for b in plan.partial:  # the recomputed rows are the full step's rows, exactly there
            if b.tokens != n:
                continue
            dim = dict(b.body)[b.feature]
            got = written[refreshed_name(b.feature)]
            chosen = got.index_select(dim, torch.tensor(top))
            torch.testing.assert_close(chosen, values[f"{b.feature}@0"].index_select(dim, torch.tensor(top)),
                                       **ROUNDING)
            rest = torch.tensor([j for j in range(n) if j not in top])
            assert torch.count_nonzero(got.index_select(dim, rest)) == 0  # the others are not written
