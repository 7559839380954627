"""What every signal handler is: one kind of signal's whole slice of a plan.

A signal is a host float per call (or per full step) that a signal-driven schedule reads. A handler says, for
its kind: where the probed values are in the graph and what the plan caches around them (``find``), which
variant yields the values (``at``), the state the measure keeps (``state``), what FULL outputs for it
(``full_outputs``), and how the float is computed before the decision (``before``) or after the variant ran
(``after``). The plan, the Runtime and the rewrites call these and never branch on the kind; a new kind of
signal is a new file here, registered for its ``Signal`` value (``registry.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.fx as fx

from ...policies.config import Policy, Region
from ...policies.schedules.signal import Decision
from ...runtime.step_program import StateTensor, VariantKind
from ..features import CachedFeature, stream_feature
from ..passes.find_probe import ProbeSite, find_probe
from ..passes.find_stream import StreamValue, pair_residuals
from ..passes.graph_utils import tensor_meta

if TYPE_CHECKING:
    from ...runtime.state import ContextState
    from ..passes.analyze import GraphAnalysis
    from ..plan import CachePlan


def l1_sums(values, references):
    """``(sum |v - ref|, sum |ref|)`` over all the values together: tensors on the host path, graph proxies
    in the DECIDE variant, one formula for both."""
    num = den = None
    for value, ref in zip(values, references):
        a, b = (value - ref).abs().sum(), ref.abs().sum()
        num, den = (a, b) if num is None else (num + a, den + b)
    return num, den


def relative_l1(values, references, reduce=None):
    """``sum |v - ref| / sum |ref|``: the signal of a probe. ``reduce`` adds both sums over the ranks first
    (context parallelism: each rank holds a shard of the tokens)."""
    num, den = l1_sums(values, references)
    if reduce is not None:
        num, den = reduce(torch.stack([num, den]))
    return num / den.clamp_min(1e-30)


def ratio(num: torch.Tensor, den: torch.Tensor, reduce) -> float:
    """``num / den`` read on the host; under context parallelism both sums are first added over the ranks
    (``reduce``), so every rank divides the same totals and takes the same decision."""
    if reduce is not None:
        num, den = reduce(torch.stack([num, den]))
    return float(num / den.clamp_min(1e-30))


def change(plan: CachePlan, values: dict, state: ContextState, reduce) -> float | None:
    """The probed values against their references (relative L1); None before the first reference."""
    refs = [state.tensors.get(name) for name in plan.reference_names]
    if any(ref is None for ref in refs):
        return None
    return ratio(*l1_sums([values[name] for name in plan.signal_names], refs), reduce)


class SignalHandler:
    """The base handler: the probed values are ``signal.i``, each with a reference ``signal.ref.i``, measured
    by a PROBE variant that runs before the decision. ``rule``: the schedule that reads the signal."""

    at: ClassVar[VariantKind] = VariantKind.PROBE  # the variant whose outputs carry the probed values
    measures_after: ClassVar[bool] = False  # ``after`` does something: the Runtime calls it after the variant
    on_device: ClassVar[bool] = False  # compiled into the DECIDE variant (decision='device')
    # its measure reads values whose dim 0 is the batch: a batch of requests measures it on each row's share
    per_row: ClassVar[bool] = True

    def __init__(self, rule):
        self.rule = rule

    def __eq__(self, other) -> bool:  # plans compare by value (the backend checks a retarget keeps the plan)
        return type(self) is type(other) and self.rule == other.rule

    def __hash__(self) -> int:
        return hash((type(self), self.rule))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.rule.signal.value})"

    @property
    def decided_on_device(self) -> bool:
        """Whether the schedule decides inside the graph (``decision="device"``)."""
        return self.rule.decision is Decision.DEVICE

    # -- compile time: the plan ------------------------------------------------------------------
    def find(self, gm: fx.GraphModule, analysis: GraphAnalysis, policy: Policy,
             features: list[CachedFeature]) -> tuple[ProbeSite, list[CachedFeature]]:
        """The probed values in ``gm`` and the features the plan caches with them: with a PROBE, nothing it
        computes anyway (``after_probe``)."""
        probed = self.at is VariantKind.PROBE  # else FULL measures it: no prefix
        probe = find_probe(gm, analysis, policy.schedule, prefixed=probed)
        return probe, after_probe(gm, analysis, policy, probe, features) if probed else features

    def check(self, plan: CachePlan) -> None:
        """Raise a typed error where the graph does not allow this signal (after the plan is made)."""

    def reference_writer(self, plan: CachePlan) -> VariantKind:
        return VariantKind.FULL

    def full_outputs(self, plan: CachePlan) -> tuple[tuple[str, str, str | None], ...]:
        """Values FULL outputs for the measure, as (name, graph value, base it is a residual of): float32."""
        return ()

    def state(self, plan: CachePlan) -> list[StateTensor]:
        decide = (VariantKind.DECIDE,) if plan.decided_on_device else ()
        return [StateTensor(ref, shape, torch.float32, "signal", written_by=(self.reference_writer(plan), *decide),
                            read_by=decide, source=name)
                for shape, name, ref in zip(plan.probe_shapes, plan.signal_names, plan.reference_names)]

    # -- run time: the measure -------------------------------------------------------------------
    def before(self, plan: CachePlan, values: dict, state: ContextState, reduce=None) -> float | None:
        """The signal of a call, before the decision (None: nothing to compare with yet). ``reduce`` sums a
        tensor over the ranks of a context-parallel group (None: one process)."""
        return None

    def after(self, plan: CachePlan, kind: VariantKind, values: dict, state: ContextState,
              reduce=None) -> float | None:
        """After a call ran ``kind``, before its state is stored: a signal measured by that call, if any."""
        return None


def after_probe(gm: fx.GraphModule, analysis: GraphAnalysis, policy: Policy, probe: ProbeSite,
                features: list[CachedFeature]) -> list[CachedFeature]:
    """What a probed plan caches: nothing the PROBE computes anyway, nothing in the last blocks that are
    always computed; a stack residual is taken against the stream after the probed blocks (FBCache,
    DBCache), whose skipped span is blocks[Fn : L - Bn]."""
    last = policy.schedule.last_blocks
    blocks = analysis.stack.blocks
    if policy.region is Region.STACK and probe.after_block is not None:
        nodes = list(gm.graph.nodes)
        pos = {n: i for i, n in enumerate(nodes)}
        by_name = {n.name: n for n in nodes}
        ends = analysis.stream.boundaries[len(blocks) - 1 - last] if last else analysis.stream.outputs
        starts = [by_name[v.name] for v in analysis.stream.boundaries[probe.after_block]]
        pairs = pair_residuals([by_name[v.name] for v in ends], starts, pos, blocks[probe.after_block + 1].start)
        features = [stream_feature(StreamValue(out.name, tuple(tensor_meta(out).shape), tensor_meta(out).dtype),
                                   "stack", base.name if base is not None else None) for out, base in pairs]
    elif last:
        tail = {n.name for b in blocks[len(blocks) - last:] for n in list(gm.graph.nodes)[b.start : b.end + 1]}
        features = [f for f in features if f.name not in tail]
    return [f for f in features if f.name not in probe.prefix]
