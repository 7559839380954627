"""Plan: which values a policy caches, the state tensors that hold them, and their memory, before step one."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx

from ..errors import ConfigError, NotCacheableError
from ..policies.config import Policy, Region
from ..policies.schedules import Decision, Signal
from ..policies.tokens import Anchor, Selection
from ..runtime.state_names import centroids_name, history_names, labels_name, refreshed_name, score_name, staleness_name
from ..runtime.step_program import StateTensor, VariantKind
from .measures import MEASURES, Measure
from .passes.analyze import GraphAnalysis
from .passes.dead_code import is_collective
from .passes.find_probe import ProbeSite, find_probe
from .passes.find_stream import StreamValue, pair_residuals
from .passes.find_token_local import TokenLocality, TokenSpace
from .passes.graph_utils import example_value, size_hint, tensor_meta


@dataclass(frozen=True)
class CachedFeature:
    name: str  # graph value that is cached
    shape: tuple[int, ...]
    dtype: torch.dtype
    residual_of: str | None = None  # cache `name - residual_of` (a residual) instead of the value
    kind: str = "value"  # what it is: output, stack, branch, block (for per-region memory)
    # context parallelism: "shard" (computed before the output's all-gather: each rank caches its tokens) or
    # "gathered" (after it: every rank caches all of them, world size x the bytes); "" without collectives
    placement: str = ""


@dataclass(frozen=True)
class CachePlan:
    region: Region
    features: tuple[CachedFeature, ...]
    num_slots: int  # history length per feature (the forecaster's)
    fingerprint: dict  # the graph and feature shapes the plan was made for (calibration files check it)
    variant_kinds: tuple[VariantKind, ...] = (VariantKind.FULL, VariantKind.CACHED)
    probe: ProbeSite | None = None  # signal-driven schedules: what the PROBE variant measures
    probe_shapes: tuple[tuple[int, ...], ...] = ()  # of each probed value
    signal_rule: Any = None  # with a probe: the signal schedule (what is measured against what, where decided)
    measured_output: str | None = None  # a model-input probe: the model output whose rate of change is measured
    partial: tuple[TokenLocality, ...] = ()  # token subsets: the cached branches a PARTIAL call recomputes on rows
    token_rows: tuple[tuple[int, int], ...] = ()  # per token space: (its rows N, the rows K a partial call recomputes)
    notes: tuple[str, ...] = ()  # what the policy asked for and the graph does not allow (the backend warns)
    clustered: tuple[TokenSpace, ...] = ()  # cluster selection: the token spaces clustered at full steps
    propagation: float = 0.0  # cluster selection: γ
    anchor: Anchor = Anchor.ORDER0  # what a partial call's fresh rows become in the forecast
    scored: tuple[int, ...] = ()  # score selection: the token spaces whose rows the PARTIAL graph picks by score
    staleness_weight: float = 0.0

    @property
    def signal_measure(self) -> Measure:
        """How the signal is measured, from which variant's values and state (``compiler/measures.py``)."""
        return MEASURES[self.signal_rule.signal]

    @property
    def decided_on_device(self) -> bool:
        """A DECIDE variant takes the decision inside one graph."""
        return getattr(self.signal_rule, "decision", None) is Decision.DEVICE

    @property
    def probe_written_by(self) -> VariantKind:
        """The probe value becomes the reference of the next signal when this kind runs."""
        return self.signal_measure.reference_writer(self)

    @property
    def full_signal_outputs(self) -> tuple[tuple[str, str, str | None], ...]:
        """What FULL outputs for the measure beyond the cached features: (name, value, base), float32."""
        return self.signal_measure.full_outputs(self) if self.probe is not None else ()

    @property
    def decision_state(self) -> tuple[tuple[str, torch.dtype], ...]:
        """The device path's decision state: the accumulator (float64, as the host sums) and the cached calls
        in a row; zero from the probe at a context's first call."""
        return (("signal.acc", torch.float64), ("signal.in_row", torch.float32)) if self.decided_on_device else ()

    @property
    def decision_state_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.decision_state)

    @property
    def prelude(self) -> tuple[VariantKind, ...]:
        """Variants every call runs before the schedule decides (the PROBE, whose signal it reads)."""
        probed = self.probe is not None and self.signal_measure.at is VariantKind.PROBE
        return (VariantKind.PROBE,) if probed else ()

    @property
    def signal_names(self) -> tuple[str, ...]:
        """The PROBE's outputs that are measured: each probed value (minus its base), float32."""
        return tuple(f"signal.{i}" for i in range(len(self.probe_shapes)))

    @property
    def reference_names(self) -> tuple[str, ...]:
        return tuple(f"signal.ref.{i}" for i in range(len(self.probe_shapes)))

    def measure(self, values: dict, state, reduce=None) -> float | None:
        """The signal of a call from the PROBE's values: one host read per call. None when there is nothing
        to compare with yet (the first call of a context)."""
        return self.signal_measure.before(self, values, state, reduce)

    def measure_after(self, kind: VariantKind, values: dict, state, reduce=None) -> float | None:
        """After a call ran ``kind``, before it stores its state: a signal that call measured (AdaCache's
        distance at a full step, SpeCa's error at a verified draft), or None; EasyCache updates its rate here."""
        return self.signal_measure.after(self, kind, values, state, reduce)

    @property
    def state(self) -> tuple[StateTensor, ...]:
        """Per feature, its history: age 0 written by FULL, older ages shifted from younger ones; per probed
        value, the reference the next signal is measured against."""
        decide = (VariantKind.DECIDE,) if self.decided_on_device else ()
        entries = self.signal_measure.state(self) if self.probe is not None else []
        for name, dtype in self.decision_state:
            entries.append(StateTensor(name, (), dtype, "signal", written_by=(VariantKind.PROBE, *decide),
                                       read_by=decide))
        refreshed = {t.feature for t in self.partial}
        for f in self.features:
            names = history_names(f, self.num_slots)
            # a refreshed feature's history moves on from its refreshed value, as the reference code's order-0
            # factor, overwritten in place by the fresh rows, is what the next full step differences against
            older = [refreshed_name(f.name) if f.name in refreshed else names[0], *names[1:]]
            for age, name in enumerate(names):
                entries.append(StateTensor(
                    name, f.shape, f.dtype, f.kind, written_by=(VariantKind.FULL, *decide),
                    read_by=(VariantKind.CACHED, *decide), shifts_from=older[age - 1] if age else None,
                    shifted_by=(VariantKind.FULL, *decide) if age == 1 and f.name in refreshed else None,
                ))
            if f.name in refreshed:  # the full step's value until a partial call refreshes rows of it
                entries.append(StateTensor(refreshed_name(f.name), f.shape, f.dtype, "token-refresh",
                                           written_by=(VariantKind.FULL, VariantKind.PARTIAL),
                                           read_by=(VariantKind.CACHED, VariantKind.PARTIAL), source=names[0]))
        rows = dict(self.token_rows)
        for space in self.clustered:  # k-means at full steps, warm-started from the last one's centroids
            points = math.prod(space.shape) // space.tokens
            entries.append(StateTensor(centroids_name(space.tokens), (rows[space.tokens], points), torch.float32,
                                       "clusters", written_by=(VariantKind.FULL,), read_by=(VariantKind.FULL,),
                                       initial_zeros=True))
            entries.append(StateTensor(labels_name(space.tokens), (space.tokens,), torch.int64, "clusters",
                                       written_by=(VariantKind.FULL,), read_by=(VariantKind.PARTIAL,)))
        for tokens in self.scored:  # importance at full steps; staleness reset there, counted by partial calls
            entries.append(StateTensor(score_name(tokens), (tokens,), torch.float32, "token-score",
                                       written_by=(VariantKind.FULL,), read_by=(VariantKind.PARTIAL,)))
            entries.append(StateTensor(staleness_name(tokens), (tokens,), torch.float32, "token-score",
                                       written_by=(VariantKind.FULL, VariantKind.PARTIAL),
                                       read_by=(VariantKind.PARTIAL,)))
        return tuple(entries)

    @property
    def state_bytes(self) -> int:
        """Bytes of cache state for one guidance context."""
        return sum(self.bytes_by_kind.values())

    @property
    def bytes_by_kind(self) -> dict[str, int]:
        """Bytes of cache state for one guidance context, per kind of feature (branch, block, ...)."""
        out: dict[str, int] = {}
        for entry in self.state:
            out[entry.kind] = out.get(entry.kind, 0) + entry.nbytes
        return out

    def describe(self) -> str:
        lines = [f"region {self.region.value}: {len(self.features)} feature(s) x {self.num_slots} history slot(s), "
                 f"{self.state_bytes / 2**20:.3f} MiB per context; variants "
                 + ", ".join(k.value for k in self.variant_kinds)]
        if self.probe is not None:
            lines.append(f"  probe: {self.probe.description} ({len(self.probe.prefix)} nodes before the decision)")
        lines += [f"  note: {note}" for note in self.notes]
        if self.partial:
            rows = ", ".join(f"{k} of {n}" for n, k in self.token_rows)
            lines.append(f"  partial: {len(self.partial)} token-local branch(es) recomputed on {rows} token rows")
        for space in self.clustered:
            lines.append(f"  clusters: the {space.tokens} tokens of {space.site}, grouped at every full step")
        for tokens in self.scored:
            lines.append(f"  scores: the {tokens} tokens ranked by importance at full steps + staleness")
        for f in self.features:
            kind = f"residual vs {f.residual_of}" if f.residual_of else "value"
            where = {"shard": ", each rank its shard of the tokens", "gathered": ", whole on every rank (after the "
                     "all-gather)"}.get(f.placement, "")
            lines.append(f"  {f.name} {list(f.shape)} {str(f.dtype).replace('torch.', '')} ({f.kind} {kind}{where})")
        return "\n".join(lines)


def _feature(value: StreamValue, kind: str, residual_of: str | None = None) -> CachedFeature:
    return CachedFeature(value.name, tuple(size_hint(d) for d in value.shape), value.dtype, residual_of, kind)


def _output_features(analysis: GraphAnalysis) -> list[CachedFeature]:
    return [_feature(v, "output") for v in analysis.stream.graph_outputs]


def _stack_features(analysis: GraphAnalysis) -> list[CachedFeature]:
    partners = dict(analysis.stream.pairs)
    return [_feature(v, "stack", partners.get(v.name)) for v in analysis.stream.outputs]


def _branch_features(analysis: GraphAnalysis) -> list[CachedFeature]:
    """Every F of every proven block; a block whose branches are not proven is cached whole."""
    features = []
    for bb in analysis.branches:
        if bb.proven:
            features += [_feature(StreamValue(b.feature, b.shape, b.dtype), "branch") for b in bb.branches]
        else:
            values = {v.name: v for boundary in analysis.stream.boundaries for v in boundary}
            values.update({v.name: v for v in analysis.stream.inputs})
            features += [_feature(values[out], "block", partner) for out, partner in bb.residual_pairs if out in values]
    return features


REGION_FEATURES: dict[Region, Callable[[GraphAnalysis], list[CachedFeature]]] = {
    Region.OUTPUT: _output_features,
    Region.STACK: _stack_features,
    Region.BRANCH: _branch_features,
}


_SIZES = (torch.SymInt, torch.SymFloat, torch.SymBool, int, float, bool)


def graph_fingerprint(gm: fx.GraphModule, features: tuple[CachedFeature, ...]) -> dict:
    """What a calibrated schedule is checked against: the graph's structure and the cached shapes, but
    not the batch size (a schedule searched on a few images holds for a batch of many). The size symbols a
    dynamic-shape graph adds (Dynamo recompiles dynamically when the batch changes) are not structure."""
    ops = "\n".join(f"{n.op}:{getattr(n.target, '__name__', n.target)}" for n in gm.graph.nodes
                    if not isinstance(example_value(n), _SIZES))
    return {
        "graph": hashlib.sha256(ops.encode()).hexdigest()[:16],
        "features": [[f.kind, list(f.shape[1:]), str(f.dtype).replace("torch.", "")] for f in features],
    }


def _after_probe(gm: fx.GraphModule, analysis: GraphAnalysis, policy: Policy, probe: ProbeSite,
                 features: list[CachedFeature]) -> list[CachedFeature]:
    """What a probed plan caches: nothing the PROBE computes anyway, nothing in the last blocks that are
    always computed; a stack residual is taken against the stream after the probed blocks (FBCache,
    DBCache), whose skipped span is blocks[Fn : L - Bn]."""
    schedule = policy.schedule
    last = getattr(schedule, "last_blocks", 0)
    blocks = analysis.stack.blocks
    if policy.region is Region.STACK and probe.after_block is not None:
        nodes = list(gm.graph.nodes)
        pos = {n: i for i, n in enumerate(nodes)}
        by_name = {n.name: n for n in nodes}
        ends = analysis.stream.boundaries[len(blocks) - 1 - last] if last else analysis.stream.outputs
        starts = [by_name[v.name] for v in analysis.stream.boundaries[probe.after_block]]
        pairs = pair_residuals([by_name[v.name] for v in ends], starts, pos, blocks[probe.after_block + 1].start)
        features = [_feature(StreamValue(out.name, tuple(tensor_meta(out).shape), tensor_meta(out).dtype), "stack",
                             base.name if base is not None else None) for out, base in pairs]
    elif last:
        tail = {n.name for b in blocks[len(blocks) - last:] for n in list(gm.graph.nodes)[b.start : b.end + 1]}
        features = [f for f in features if f.name not in tail]
    return [f for f in features if f.name not in probe.prefix]


def _check_device_decision(policy: Policy, plan: CachePlan) -> None:
    """On the device path the host never learns which steps were full, so it cannot compute forecast weights
    that depend on them: the forecast must be plain reuse (one slot, weight 1). Only the relative L1 of a
    probe is compiled into the decision graph."""
    if not plan.signal_measure.on_device:
        raise ConfigError(f"decision='device' compiles the relative L1 of a probe (signal 'first-blocks' or "
                          f"'modulated-input'); signal {policy.schedule.signal.value!r} is measured on the host: use "
                          "decision='host'")
    forecaster = policy.forecaster
    if forecaster.num_slots != 1 or tuple(forecaster.weights(1.0, [0.0])) != (1.0,):
        raise ConfigError(
            f"decision='device' needs a forecaster whose weights do not depend on where the full steps were "
            f"(reuse: fbcache, teacache, dbcache); {policy.name!r} forecasts with {type(forecaster).__name__}: use "
            "decision='host' with it"
        )


def _against_input(gm: fx.GraphModule, features: list[CachedFeature], probe: ProbeSite) -> list[CachedFeature]:
    """A model-input probe (EasyCache): an output of the probed input's shape and dtype is cached as its
    change from that input, so a cached call returns ``x + (v_p - x_p)`` and moves with the latent it is
    given; an output of another shape (a learned-variance DiT's) is reused as it is."""
    ((latent, _),) = probe.values
    meta = tensor_meta(next(n for n in gm.graph.nodes if n.name == latent))
    shape = tuple(size_hint(d) for d in meta.shape)
    return [dataclasses.replace(f, residual_of=latent) if f.kind == "output" and f.shape == shape else f
            for f in features]


def _verified(gm: fx.GraphModule, analysis: GraphAnalysis, policy: Policy,
              features: list[CachedFeature]) -> ProbeSite:
    """SpeCa checks a draft on the last block: the cached features computed inside it (its branches)."""
    if policy.region is not Region.BRANCH:
        raise ConfigError(f"a speculative schedule verifies the forecast of the last block's branches: use it with "
                          f"region='branch' (speca), not {policy.region.value!r}")
    last = analysis.stack.blocks[-1]
    inside = {n.name for n in list(gm.graph.nodes)[last.start : last.end + 1]}
    values = tuple((f.name, None) for f in features if f.name in inside)
    if not values:
        raise NotCacheableError(f"nothing cached in the last block {last.name}: no forecast to verify")
    return ProbeSite(values, frozenset(), None, f"the forecast of {last.name}'s cached branches, checked by verified "
                                                 f"drafts: {[v for v, _ in values]}")


def make_plan(gm: fx.GraphModule, analysis: GraphAnalysis, policy: Policy) -> CachePlan:
    features = REGION_FEATURES[policy.region](analysis)
    probe = None
    if getattr(policy.schedule, "signal", None) is Signal.VERIFICATION:  # the cached features it checks
        probe = _verified(gm, analysis, policy, features)
    elif getattr(policy.schedule, "signal", None) is not None:  # a signal-driven schedule measures a probe
        probed = MEASURES[policy.schedule.signal].at is VariantKind.PROBE  # else FULL measures it: no prefix
        probe = find_probe(gm, analysis, policy.schedule, prefixed=probed)
        if probed:
            features = _after_probe(gm, analysis, policy, probe, features)
        if policy.schedule.signal is Signal.MODEL_INPUT:
            features = _against_input(gm, features, probe)
    if not features:
        raise NotCacheableError("nothing left to cache after the probe: every cached value is computed before "
                                "the decision")
    features = _placed(gm, tuple(features))
    plan = CachePlan(policy.region, features, policy.forecaster.num_slots, graph_fingerprint(gm, features))
    if probe is not None:
        by_name = {n.name: n for n in gm.graph.nodes}
        shapes = tuple(tuple(size_hint(d) for d in tensor_meta(by_name[v]).shape) for v, _ in probe.values)
        output = features[0].name if policy.schedule.signal is Signal.MODEL_INPUT else None
        if output is not None and features[0].kind != "output":
            raise ConfigError("signal='model-input' measures the model output's rate of change: use it with "
                              "region='output' (easycache)")
        plan = dataclasses.replace(plan, probe=probe, probe_shapes=shapes, signal_rule=policy.schedule,
                                   measured_output=output)
        if plan.decided_on_device:
            _check_device_decision(policy, plan)
        decide = (VariantKind.DECIDE,) if plan.decided_on_device else ()
        verify = (VariantKind.VERIFY,) if plan.signal_measure.at is VariantKind.VERIFY else ()
        plan = dataclasses.replace(plan, variant_kinds=(*plan.prelude, *plan.variant_kinds, *verify, *decide))
    if policy.tokens is not None:
        plan = _with_token_subsets(plan, analysis, policy)
    policy.schedule.check_plan(plan.fingerprint)
    return plan


def _placed(gm: fx.GraphModule, features: tuple[CachedFeature, ...]) -> tuple[CachedFeature, ...]:
    """Under context parallelism, where each feature sits relative to the all-gathers of the graph."""
    nodes = list(gm.graph.nodes)
    if not any(is_collective(n) for n in nodes):
        return features
    after: set[fx.Node] = set()
    for node in nodes:  # graph order: a node's inputs come first
        if (is_collective(node) and "all_gather" in str(node.target)) or any(a in after for a in node.all_input_nodes):
            after.add(node)
    gathered = {n.name for n in after}
    return tuple(dataclasses.replace(f, placement="gathered" if f.name in gathered else "shard") for f in features)


def _with_token_subsets(plan: CachePlan, analysis: GraphAnalysis, policy: Policy) -> CachePlan:
    """The token-local branches among the cached features, recomputed on a few rows by the PARTIAL variant."""
    if plan.decided_on_device:
        raise ConfigError("token subsets need the host to choose the rows of a partial call: use decision='host'")
    cached = {f.name for f in plan.features}
    partial = tuple(t for t in analysis.token_local if t.local and t.feature in cached)
    if not partial:  # cache as the policy does without token subsets, and say why
        mixing = "; ".join(f"{t.feature}: {t.reason}" for t in analysis.token_local[:3]) or "no residual branch found"
        return dataclasses.replace(plan, notes=(f"no cached branch is token-local, so no cached step recomputes token "
                                                f"rows ({mixing}); see `c4d inspect`",))
    rows = tuple((n, policy.tokens.count(n)) for n in sorted({t.tokens for t in partial}))
    kinds = list(plan.variant_kinds)
    kinds.insert(kinds.index(VariantKind.CACHED) + 1, VariantKind.PARTIAL)
    plan = dataclasses.replace(plan, partial=partial, token_rows=rows, variant_kinds=tuple(kinds),
                               anchor=policy.tokens.anchor)
    if policy.tokens.selection is Selection.SCORE:
        return dataclasses.replace(plan, scored=tuple(n for n, _ in rows),
                                   staleness_weight=policy.tokens.staleness_weight)
    if policy.tokens.selection is not Selection.CLUSTER:
        return plan
    spaces = {s.tokens: s for s in analysis.token_spaces}
    missing = [n for n, _ in rows if n not in spaces]
    if missing:
        raise NotCacheableError(f"token clusters: no block output carries the token space(s) of {missing} tokens")
    return dataclasses.replace(plan, clustered=tuple(spaces[n] for n, _ in rows),
                               propagation=policy.tokens.propagation)
