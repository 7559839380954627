"""Human-readable text of a GraphAnalysis (what ``c4d inspect`` prints)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .analyze import GraphAnalysis


def _values(values) -> str:
    return ", ".join(map(str, values)) or "-"


def format_report(a: GraphAnalysis) -> str:
    lines = [f"graph: {a.num_nodes} nodes"]
    lines.append("timestep input: " + (", ".join(t.name for t in a.timesteps) or "none"))
    stack = a.stack
    if stack.blocks:
        start, end = stack.span
        lines.append(f"block stack: {len(stack.blocks)} blocks in {len(stack.lists)} list(s), nodes {start}..{end}")
        for name in stack.lists:
            members = [b for b in stack.blocks if b.list_name == name]
            lines.append(f"  list {name}: {len(members)} blocks")
        for before, after, count in stack.glue:
            lines.append(f"  glue {before} -> {after}: {count} nodes")
        s = a.stream
        lines.append(f"stream in : {_values(s.inputs)}")
        lines.append(f"stream out: {_values(s.outputs)}")
        for out, partner in s.pairs:
            lines.append(f"  residual {out} - {partner}" if partner else f"  value {out} (no input partner)")
        if s.recomputed_outputs:
            lines.append(f"recomputed glue: {', '.join(s.recomputed_outputs)}")
        lines.append(f"invariants: {_values(s.invariants)}")
        lines.append("token dims: " + (", ".join(f"{k}{list(t.dims)}" + ("" if t.proven else " (assumed)")
                                                 for k, t in a.token_dims.items()) or "-"))
        lines.append("blocks (graph order): position, matmuls, stream after it")
        for b, live in zip(stack.blocks, s.boundaries):
            lines.append(f"  {b.name:<32} {b.start:>5}..{b.end:<5} {b.matmuls:>3}  {_values(live)}")
        lines.append("residual branches per block (s <- s + g * F):")
        for bb in a.branches:
            if bb.proven:
                found = ", ".join(f"{br.feature}" + (f"*{br.gate}" if br.gate else "") for br in bb.branches)
                lines.append(f"  {bb.block:<32} {len(bb.branches)}: {found}")
            else:
                lines.append(f"  {bb.block:<32} not proven ({bb.reason}): cached as a block residual")
        if a.token_local:
            local = [t for t in a.token_local if t.local]
            lines.append(f"token-local branches (recomputable on a token subset): {len(local)} of {len(a.token_local)}")
            for t in a.token_local:
                verdict = f"local, {len(t.body)} ops on {t.tokens} tokens" if t.local else f"mixes tokens: {t.reason}"
                lines.append(f"  {t.block:<32} {t.feature:<28} {verdict}")
    lines.append("cacheable: " + ("yes" if a.cacheable else "no"))
    lines += [f"  problem: {p}" for p in a.problems]
    return "\n".join(lines)
