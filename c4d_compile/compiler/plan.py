"""Plan: which values a policy caches, the state tensors that hold them, and their memory, before step one."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.fx as fx

from ..errors import ConfigError, NotCacheableError
from ..policies.config import Policy, Region
from ..runtime.state_names import history_names, refreshed_name
from ..runtime.step_program import StateTensor, VariantKind
from .features import REGION_FEATURES, CachedFeature
from .passes.analyze import GraphAnalysis
from .passes.check_collectives import exchange_group
from .passes.dead_code import is_collective
from .passes.find_probe import ProbeSite
from .passes.find_token_local import TokenLocality
from .passes.graph_utils import is_parameter_input, size_hint, tensor_meta
from .signals import SignalHandler, handler_for
from .tokens import TokenHandler, bind_tokens


@dataclass(frozen=True)
class CachePlan:
    region: Region
    features: tuple[CachedFeature, ...]
    num_slots: int  # history length per feature (the forecaster's)
    fingerprint: dict  # the graph and feature shapes the plan was made for (calibration files check it)
    variant_kinds: tuple[VariantKind, ...] = (VariantKind.FULL, VariantKind.CACHED)
    probe: ProbeSite | None = None  # signal-driven schedules: what the PROBE variant measures
    probe_shapes: tuple[tuple[int, ...], ...] = ()  # of each probed value
    signal: SignalHandler | None = None  # with a probe: its kind of signal's handler, bound to the schedule
    tokens: TokenHandler | None = None  # token subsets: the selection's handler, bound to the token-local branches
    notes: tuple[str, ...] = ()  # what the policy asked for and the graph does not allow (the backend warns)

    @property
    def partial(self) -> tuple[TokenLocality, ...]:
        """The cached branches a PARTIAL call recomputes on token rows."""
        return self.tokens.partial if self.tokens is not None else ()

    @property
    def token_rows(self) -> tuple[tuple[int, int], ...]:
        """Per token space: (its rows N, the rows K a partial call recomputes)."""
        return self.tokens.token_rows if self.tokens is not None else ()

    @property
    def decided_on_device(self) -> bool:
        """A DECIDE variant takes the decision inside one graph."""
        return self.signal is not None and self.signal.decided_on_device

    @property
    def probe_written_by(self) -> VariantKind:
        """The probe value becomes the reference of the next signal when this kind runs."""
        return self.signal.reference_writer(self)

    @property
    def full_signal_outputs(self) -> tuple[tuple[str, str, str | None], ...]:
        """What FULL outputs for the measure beyond the cached features: (name, value, base), float32."""
        return self.signal.full_outputs(self) if self.signal is not None else ()

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
        probed = self.signal is not None and self.signal.at is VariantKind.PROBE
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
        return self.signal.before(self, values, state, reduce)

    def measure_after(self, kind: VariantKind, values: dict, state, reduce=None) -> float | None:
        """After a call ran ``kind``, before it stores its state: a signal that call measured (AdaCache's
        distance at a full step, SpeCa's error at a verified draft), or None; EasyCache updates its rate here."""
        return self.signal.after(self, kind, values, state, reduce)

    @property
    def state(self) -> tuple[StateTensor, ...]:
        """Per feature, its history: age 0 written by FULL, older ages shifted from younger ones; per probed
        value, the reference the next signal is measured against."""
        decide = (VariantKind.DECIDE,) if self.decided_on_device else ()
        entries = self.signal.state(self) if self.signal is not None else []
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
        if self.tokens is not None:
            entries += self.tokens.state()
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
            lines += self.tokens.describe()
        for f in self.features:
            kind = f"residual vs {f.residual_of}" if f.residual_of else "value"
            where = {"shard": ", each rank its shard of the tokens", "gathered": ", whole on every rank (after the "
                     "all-gather)"}.get(f.placement, "")
            lines.append(f"  {f.name} {list(f.shape)} {str(f.dtype).replace('torch.', '')} ({f.kind} {kind}{where})")
        return "\n".join(lines)


def graph_fingerprint(gm: fx.GraphModule, features: tuple[CachedFeature, ...]) -> dict:
    """What a calibrated schedule is checked against: the model and the cached shapes. The model is its
    parameters' shapes and dtypes and its other tensor inputs' ranks and dtypes (buffers among them), each as a
    sorted list — not the graph's ops or the order and names of its inputs, which context parallelism changes
    (collectives and the reshapes around them, inputs renamed through its hooks) while a schedule calibrated in
    one process holds on every rank. Not the batch size either (a schedule searched on a few images holds for a
    batch of many). Under context parallelism, ``shards`` says which features each rank holds a shard of, and
    over how many ranks, so their sizes compare with the whole ones (``policies/schedules/calibrated.py``)."""
    parts = []
    for node in gm.graph.nodes:
        meta = tensor_meta(node) if node.op == "placeholder" else None
        if meta is None:
            continue
        weight = is_parameter_input(node)  # told by its value, not its name (hooks rename it)
        parts.append(f"{'weight' if weight else 'input'} {str(meta.dtype).replace('torch.', '')} "
                     f"{[size_hint(d) for d in meta.shape] if weight else meta.dim()}")
    fingerprint = {
        "graph": hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16],
        "features": [[f.kind, list(f.shape[1:]), str(f.dtype).replace("torch.", "")] for f in features],
    }
    shards = [i for i, f in enumerate(features) if f.placement == "shard"]
    if shards:
        fingerprint["shards"] = {"world": _exchange_size(gm), "features": shards}
    return fingerprint


def _exchange_size(gm: fx.GraphModule) -> int:
    """How many ranks the graph's collectives exchange tokens between (its process group's size)."""
    name = exchange_group(gm)
    group = dist.distributed_c10d._resolve_process_group(name) if name is not None else None
    return group.size() if group is not None else dist.get_world_size()


def _check_device_decision(policy: Policy, plan: CachePlan) -> None:
    """On the device path the host never learns which steps were full, so it cannot compute forecast weights
    that depend on them: the forecast must be plain reuse (one slot, weight 1). Only the relative L1 of a
    probe is compiled into the decision graph."""
    if not plan.signal.on_device:
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


def make_plan(gm: fx.GraphModule, analysis: GraphAnalysis, policy: Policy) -> CachePlan:
    features = REGION_FEATURES[policy.region](analysis)
    signal = handler_for(policy.schedule)  # a signal-driven schedule measures a probe (its handler finds it)
    probe = None
    if signal is not None:
        probe, features = signal.find(gm, analysis, policy, features)
    if not features:
        raise NotCacheableError("nothing left to cache after the probe: every cached value is computed before "
                                "the decision")
    features = _placed(gm, tuple(features))
    plan = CachePlan(policy.region, features, policy.forecaster.num_slots, graph_fingerprint(gm, features))
    if signal is not None:
        by_name = {n.name: n for n in gm.graph.nodes}
        shapes = tuple(tuple(size_hint(d) for d in tensor_meta(by_name[v]).shape) for v, _ in probe.values)
        plan = dataclasses.replace(plan, probe=probe, probe_shapes=shapes, signal=signal)
        signal.check(plan)
        if plan.decided_on_device:
            _check_device_decision(policy, plan)
        decide = (VariantKind.DECIDE,) if plan.decided_on_device else ()
        verify = (VariantKind.VERIFY,) if signal.at is VariantKind.VERIFY else ()
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
    tokens = bind_tokens(policy.tokens, partial, analysis.token_spaces)
    kinds = list(plan.variant_kinds)
    kinds.insert(kinds.index(VariantKind.CACHED) + 1, VariantKind.PARTIAL)
    return dataclasses.replace(plan, tokens=tokens, variant_kinds=tuple(kinds))
