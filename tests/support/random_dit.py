"""Seeded random DiT-like transformers with known structure, for testing c4d_compile's graph analysis.

``random_dit(seed)`` returns ``(model, make_inputs, spec)``. ``spec`` (an :class:`ArchSpec`) is the ground
truth the analysis passes are checked against: which block lists exist, the order blocks run in, and how
many residual branch adds each block performs on the stream(s) it carries.

Choices that matter to the analysis under test:

* Residual adds are written by the plain function :func:`residual`, never by a wrapper module, so nothing in
  the module hierarchy (and so nothing in Dynamo's ``nn_module_stack``) marks them: they must be found from
  the data flow.
* Attribute names (block lists, sub-modules) come from pools of deliberately unusual names, so the analysis
  cannot key on ``transformer_blocks`` or ``attn``.
* Boolean features are balanced over every aligned window of 24 seeds (see :func:`_features`), so seeds
  0..23 cover every feature both ways by construction. Everything else (sizes, names, minor variants) is
  drawn from ``random.Random(seed)``.
* All decisions are made at construction time; ``forward`` has no data-dependent control flow, so Dynamo
  captures each model as one graph.
* Tracing cost: on a small CPU a Dynamo trace costs ~1 ms per plain op and ~10 ms per module call or
  parameter. Models are therefore small, and a few equivalent-but-cheaper forms are used (functional GELU,
  RMSNorm and usually LayerNorm; roll-based RoPE). Dynamo-tracing all 24 sanity seeds takes ~40 s on 2 cores.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ArchSpec:
    """Ground truth for one generated model. Blocks are indexed in forward (execution) order."""

    seed: int
    dual_stream: bool  # main blocks carry image + text streams (SD3/Flux double blocks) vs image only
    joint_cat_blocks: int  # blocks that cat text+image, run on the joined tokens and slice back; run last
    gated: bool  # residual is s + g * F with g from the timestep embedding (adaLN-zero), else s + F
    add_order_branch_first: bool  # add(F, s) instead of add(s, F)
    casts: bool  # (s.float() + [g *] F.float()).type_as(s) at every residual add, gated or not (Wan style)
    pruned_last_block: bool  # last dual block has no text output (SD3 context_pre_only): 2 branches
    refiner_blocks: int  # blocks run on the text stream (on the only stream if no text) before the main stack
    interleaved: bool  # main stack is two ModuleLists whose blocks alternate (a0, b0, a1, b1, ...)
    long_skip: bool  # one main block's image input also gets an earlier non-adjacent block's output added
    recompute_cond_in_block: bool  # DiT: each block runs its own adaLN Linear on temb (else PixArt table)
    list_names: tuple[str, ...]  # block ModuleList attribute names on the model, in forward order
    num_blocks: int  # over all lists, refiner included
    blocks_per_list: tuple[int, ...]  # aligned with list_names
    branches_per_block: tuple[int, ...]  # residual branch adds onto the block's stream(s), per block
    hidden: int
    tokens: int  # image tokens
    text_tokens: int  # 0 when the model has no text input
    # Extras beyond the brief, handy for the analysis tests:
    block_paths: tuple[str, ...] = ()  # qualified module name of every block, forward order ("trunk.0", ...)
    block_kinds: tuple[str, ...] = ()  # "refiner" | "single" | "parallel" | "dual" | "dual_pruned" | "joint"
    skip_pairs: tuple[tuple[int, int], ...] = ()  # (src, dst): dst's image input += output of block src


# Residual branches each kind of block adds onto its stream(s); the sanity test re-derives them with torch.fx.
_BRANCHES = {"refiner": 2, "single": 2, "parallel": 1, "dual": 4, "dual_pruned": 2, "joint": 1}

# Name pools: unusual on purpose, see the module docstring.
_LIST_NAMES = ("layers", "trunk", "stages", "tower", "xf", "stack", "body", "spine", "cells", "rungs", "pile")
_ATTN_NAMES = ("mix", "tok_attn", "sa", "mixer", "att", "attention")
_MLP_NAMES = ("ff", "mlp", "ffn", "chan_mix", "fc")
_NORM_NAMES = (("n1", "n2"), ("pre_mix", "pre_ff"), ("ln_a", "ln_b"), ("norm_x", "norm_y"))
_ADA_NAMES = ("ada", "mod", "adaLN_modulation", "film", "cond_proj")
_TABLE_NAMES = ("sst", "scale_shift_table", "mod_bias", "film_bias")
_STREAM_NAMES = (("img", "txt"), ("x", "c"), ("lat", "ctx"), ("vis", "lang"))
_QKV_NAMES = (("qkv",), ("to_q", "to_k", "to_v"), ("wq", "wk", "wv"))
_OUT_NAMES = ("proj", "to_out", "wo", "o")
_UPDOWN_NAMES = (("up", "down"), ("fc1", "fc2"), ("w_in", "w_out"))
_MODEL_NAMES = {
    "latent_in": ("x_in", "patchify", "stem", "img_in"),
    "time": ("t_mlp", "time_in", "clock", "t_embedder"),
    "text": ("ctx_in", "txt_in", "cap_proj", "y_embed"),
    "pool": ("pooled_in", "vec_in", "y_pool"),
    "t_mod": ("t_block", "t_mod", "shared_ada"),
    "final_ada": ("final_ada", "norm_out_mod", "head_film"),
    "head": ("head", "out_proj", "to_latent", "final"),
    "skip": ("skip_proj", "bridge", "shortcut"),
}


# ---------------------------------------------------------------------------------------------------------
# Plain functions: Dynamo inlines them, so they leave no trace in the module hierarchy.


def residual(s, f, gate, st):
    """The residual add the analysis has to find: s + [g *] F, in the operand order and dtype style of st."""
    base = s
    if st.casts:  # Wan style: do the update in float32, cast back to the stream's dtype
        base, f = s.float(), f.float()
        gate = None if gate is None else gate.float()
    if gate is not None:
        f = gate * f if st.gate_left else f * gate
    out = f + base if st.branch_first else base + f
    return out.type_as(s) if st.casts else out


def modulate(h, shift, scale):
    return h * (1 + scale) + shift


def sinusoidal(t, dim, flip_sin_to_cos=False):
    """diffusers' get_timestep_embedding: sin/cos of t[:, None] * geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat((torch.sin(args), torch.cos(args)), dim=-1)
    return torch.cat((emb[:, half:], emb[:, :half]), dim=-1) if flip_sin_to_cos else emb


def rope_table(n, head_dim, like):
    """(2, n, head_dim): cos and signed sin of rotary angles, computed in the graph from torch.arange.

    The first half of the sin row is negated so that rotate_half(x) * sin == x.roll(head_dim // 2) * table[1]:
    the usual rotary embedding in fewer ops.
    """
    pos = torch.arange(n, dtype=torch.float32, device=like.device)
    inv = 10000.0 ** (-torch.arange(0, head_dim, 2, dtype=torch.float32, device=like.device) / head_dim)
    ang = pos[:, None] * inv[None]
    cos = torch.cat((ang, ang), dim=-1).cos()
    sin = torch.cat((-ang.sin(), ang.sin()), dim=-1)
    return torch.stack((cos, sin)).to(like.dtype)


def attend(q, k, v, rope):
    """SDPA over (B, heads, N, head_dim), with rotary embedding of q and k when a table is given."""
    if rope is not None:
        cos, sin, half = rope[0], rope[1], q.shape[-1] // 2
        q = q * cos + q.roll(half, dims=-1) * sin
        k = k * cos + k.roll(half, dims=-1) * sin
    return F.scaled_dot_product_attention(q, k, v)


def merge_heads(t):
    return t.transpose(1, 2).flatten(2)  # (B, heads, N, head_dim) -> (B, N, hidden)


# ---------------------------------------------------------------------------------------------------------
# Blocks


@dataclass(frozen=True)
class _Style:
    """Per-model choices shared by all blocks: flags plus the attribute names to use."""

    hidden: int
    heads: int
    mlp_ratio: int
    gated: bool
    branch_first: bool
    casts: bool
    recompute: bool
    rope: bool
    qk_norm: bool
    norm_modules: bool  # nn.LayerNorm sub-modules vs F.layer_norm in forward
    gate_left: bool  # g * F vs F * g
    gelu: str
    attn: str
    mlp: str
    norms: tuple[str, str]
    ada: str
    table: str
    streams: tuple[str, str]  # attribute prefixes of the image and text halves of dual blocks
    qkv: tuple[str, ...]  # one fused projection or three
    out: str
    updown: tuple[str, str]


class _FeedForward(nn.Module):
    """Linear -> GELU -> Linear."""

    def __init__(self, st):
        super().__init__()
        self.st = st
        up, down = st.updown
        setattr(self, up, nn.Linear(st.hidden, st.hidden * st.mlp_ratio))
        setattr(self, down, nn.Linear(st.hidden * st.mlp_ratio, st.hidden))

    def forward(self, x):
        up, down = self.st.updown
        return getattr(self, down)(F.gelu(getattr(self, up)(x), approximate=self.st.gelu))


class _Attention(nn.Module):
    """Self-attention whose two halves (project, finish) are also used separately for joint attention."""

    def __init__(self, st, with_out=True):
        super().__init__()
        self.st = st
        width = st.hidden * (3 if len(st.qkv) == 1 else 1)
        for name in st.qkv:
            setattr(self, name, nn.Linear(st.hidden, width))
        if st.qk_norm:  # Flux-style RMSNorm on q and k, per head
            self.q_scale = nn.Parameter(torch.ones(st.hidden // st.heads))
            self.k_scale = nn.Parameter(torch.ones(st.hidden // st.heads))
        if with_out:
            setattr(self, st.out, nn.Linear(st.hidden, st.hidden))

    def project(self, h):
        """-> q, k, v as (B, heads, N, head_dim)."""
        st = self.st
        if len(st.qkv) == 1:
            qkv = getattr(self, st.qkv[0])(h).unflatten(-1, (3, st.heads, -1))
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        else:
            q_proj, k_proj, v_proj = (getattr(self, name) for name in st.qkv)
            q = q_proj(h).unflatten(-1, (st.heads, -1)).transpose(1, 2)
            k = k_proj(h).unflatten(-1, (st.heads, -1)).transpose(1, 2)
            v = v_proj(h).unflatten(-1, (st.heads, -1)).transpose(1, 2)
        if st.qk_norm:
            q = F.rms_norm(q, q.shape[-1:], self.q_scale, eps=1e-6)
            k = F.rms_norm(k, k.shape[-1:], self.k_scale, eps=1e-6)
        return q, k, v

    def finish(self, o):
        return getattr(self, self.st.out)(merge_heads(o))

    def forward(self, h, rope):
        q, k, v = self.project(h)
        return self.finish(attend(q, k, v, rope))


class _Block(nn.Module):
    """Shared block plumbing: adaLN modulation groups, pre-norms, whether the block applies RoPE."""

    def __init__(self, st, groups, use_rope, norm_names):
        super().__init__()
        self.st, self.use_rope = st, use_rope
        self.per_group = 3 if st.gated else 2  # (shift, scale[, gate]) per normed sub-layer
        self.k = groups * self.per_group
        if st.recompute:  # DiT: the block owns a Linear over silu(temb)
            setattr(self, st.ada, nn.Linear(st.hidden, self.k * st.hidden))
        else:  # PixArt: a learned table added to a modulation the model computes once
            setattr(self, st.table, nn.Parameter(torch.randn(self.k, st.hidden) * 0.1))
        if st.norm_modules:
            for name in norm_names:
                setattr(self, name, nn.LayerNorm(st.hidden, elementwise_affine=False, eps=1e-6))

    def modulation(self, cond):
        """-> list of (shift, scale, gate or None) per group, each (B, 1, hidden)."""
        st = self.st
        if st.recompute:
            m = getattr(self, st.ada)(F.silu(cond)).unflatten(-1, (self.k, -1))
        else:
            m = cond.unflatten(-1, (-1, st.hidden))[:, : self.k] + getattr(self, st.table)
        m = m.unsqueeze(2).unbind(1)
        return [(m[i], m[i + 1], m[i + 2] if st.gated else None) for i in range(0, self.k, self.per_group)]

    def norm(self, x, name):
        if self.st.norm_modules:
            return getattr(self, name)(x)
        return F.layer_norm(x, (self.st.hidden,), eps=1e-6)

    def rope(self, rope):
        return rope if self.use_rope else None


class _SingleBlock(_Block):
    """One stream. Sequential: attention then MLP, two residual branches. Parallel: attn(h) + mlp(h), one."""

    def __init__(self, st, parallel, use_rope):
        super().__init__(st, groups=1 if parallel else 2, use_rope=use_rope, norm_names=st.norms)
        self.parallel = parallel
        setattr(self, st.attn, _Attention(st))
        setattr(self, st.mlp, _FeedForward(st))

    def forward(self, x, cond, rope):
        attn, mlp, (n1, n2) = getattr(self, self.st.attn), getattr(self, self.st.mlp), self.st.norms
        rope = self.rope(rope)
        mods = self.modulation(cond)
        if self.parallel:
            shift, scale, gate = mods[0]
            h = modulate(self.norm(x, n1), shift, scale)
            return residual(x, attn(h, rope) + mlp(h), gate, self.st)
        (s1, c1, g1), (s2, c2, g2) = mods
        x = residual(x, attn(modulate(self.norm(x, n1), s1, c1), rope), g1, self.st)
        return residual(x, mlp(modulate(self.norm(x, n2), s2, c2)), g2, self.st)


class _DualBlock(_Block):
    """Image + text streams with joint attention over both (SD3/Flux double block): four branches. If
    ``pruned`` (SD3 context_pre_only) the text only supplies keys/values: no text output, two branches."""

    def __init__(self, st, pruned, txt_first):
        a, b = st.streams
        n1, n2 = st.norms
        norm_names = (f"{a}_{n1}", f"{a}_{n2}", f"{b}_{n1}", f"{b}_{n2}")  # the last is unused when pruned
        groups = 3 if pruned else 4
        super().__init__(st, groups=groups, use_rope=st.rope, norm_names=norm_names[:groups])
        self.pruned, self.txt_first, self.norm_names = pruned, txt_first, norm_names
        setattr(self, f"{a}_{st.attn}", _Attention(st))
        setattr(self, f"{a}_{st.mlp}", _FeedForward(st))
        setattr(self, f"{b}_{st.attn}", _Attention(st, with_out=not pruned))
        if not pruned:
            setattr(self, f"{b}_{st.mlp}", _FeedForward(st))

    def forward(self, img, txt, cond, rope):
        st, (a, b) = self.st, self.st.streams
        img_attn, txt_attn = getattr(self, f"{a}_{st.attn}"), getattr(self, f"{b}_{st.attn}")
        ni1, ni2, nt1, nt2 = self.norm_names
        mods = self.modulation(cond)
        (is1, ic1, ig1), (is2, ic2, ig2), (ts1, tc1, tg1) = mods[:3]

        qi, ki, vi = img_attn.project(modulate(self.norm(img, ni1), is1, ic1))
        qt, kt, vt = txt_attn.project(modulate(self.norm(txt, nt1), ts1, tc1))
        rope = self.rope(rope)
        if self.txt_first:  # joint attention over the concatenated tokens, then split back
            o = attend(torch.cat((qt, qi), 2), torch.cat((kt, ki), 2), torch.cat((vt, vi), 2), rope)
            o_txt, o_img = o[:, :, : txt.shape[1]], o[:, :, txt.shape[1] :]
        else:
            o = attend(torch.cat((qi, qt), 2), torch.cat((ki, kt), 2), torch.cat((vi, vt), 2), rope)
            o_img, o_txt = o[:, :, : img.shape[1]], o[:, :, img.shape[1] :]

        img_mlp = getattr(self, f"{a}_{st.mlp}")
        img = residual(img, img_attn.finish(o_img), ig1, st)
        img = residual(img, img_mlp(modulate(self.norm(img, ni2), is2, ic2)), ig2, st)
        if self.pruned:
            return img
        ts2, tc2, tg2 = mods[3]
        txt_mlp = getattr(self, f"{b}_{st.mlp}")
        txt = residual(txt, txt_attn.finish(o_txt), tg1, st)
        txt = residual(txt, txt_mlp(modulate(self.norm(txt, nt2), ts2, tc2)), tg2, st)
        return img, txt


class _JointCatBlock(_Block):
    """Flux/Hunyuan single-stream block: cat text and image tokens, one residual branch (attention and MLP in
    parallel on the same normed input), then slice the two streams back apart."""

    def __init__(self, st, txt_first, fused_out):
        super().__init__(st, groups=1, use_rope=st.rope, norm_names=st.norms[:1])
        self.txt_first, self.fused_out = txt_first, fused_out
        setattr(self, st.attn, _Attention(st, with_out=not fused_out))
        if fused_out:  # Flux: proj_out(cat(attention, gelu(mlp_in(h))))
            self.mlp_in = nn.Linear(st.hidden, st.hidden * st.mlp_ratio)
            self.proj_out = nn.Linear(st.hidden * (1 + st.mlp_ratio), st.hidden)
        else:
            setattr(self, st.mlp, _FeedForward(st))

    def forward(self, img, txt, cond, rope):
        st = self.st
        first = txt if self.txt_first else img
        joined = torch.cat((txt, img) if self.txt_first else (img, txt), dim=1)
        shift, scale, gate = self.modulation(cond)[0]
        h = modulate(self.norm(joined, st.norms[0]), shift, scale)
        attn = getattr(self, st.attn)
        if self.fused_out:
            q, k, v = attn.project(h)
            a = merge_heads(attend(q, k, v, self.rope(rope)))
            f = self.proj_out(torch.cat((a, F.gelu(self.mlp_in(h), approximate=st.gelu)), dim=-1))
        else:
            f = attn(h, self.rope(rope)) + getattr(self, st.mlp)(h)
        joined = residual(joined, f, gate, st)
        head, tail = joined[:, : first.shape[1]], joined[:, first.shape[1] :]
        return (tail, head) if self.txt_first else (head, tail)  # always (img, txt)


# ---------------------------------------------------------------------------------------------------------
# Feature plan


_BALANCED = (
    "dual_stream",
    "gated",
    "add_order_branch_first",
    "casts",
    "refiner",
    "interleaved",
    "long_skip",
    "recompute_cond_in_block",
)


def _features(seed):
    """Boolean features for ``seed``, balanced over its aligned window of 24 seeds.

    Each independent feature is a shuffled 12-true/12-false column. Dependent ones are balanced inside the
    seeds where they make sense: ``pruned`` is 4 of the 12 dual seeds; ``joint`` is 4 of the 8 unpruned dual
    seeds plus 6 of the 12 single-stream seeds (a pruned block drops the text the joint blocks need).
    """
    window, pos = divmod(seed, 24)
    rng = random.Random(f"random_dit-features-{window}")

    def balanced(n_true, n):
        col = [True] * n_true + [False] * (n - n_true)
        rng.shuffle(col)
        return col

    cols = {name: balanced(12, 24) for name in _BALANCED}
    dual = [i for i in range(24) if cols["dual_stream"][i]]
    single = [i for i in range(24) if not cols["dual_stream"][i]]
    cols["pruned"] = [False] * 24
    cols["joint"] = [False] * 24
    for i, value in zip(dual, balanced(4, 12)):
        cols["pruned"][i] = value
    for i, value in zip([i for i in dual if not cols["pruned"][i]], balanced(4, 8)):
        cols["joint"][i] = value
    for i, value in zip(single, balanced(6, 12)):
        cols["joint"][i] = value
    return {name: col[pos] for name, col in cols.items()}


@dataclass(frozen=True)
class _Plan:
    """Everything decided for one seed; the model is built from it deterministically."""

    st: _Style
    feats: dict
    names: dict  # model-level attribute names
    image_latent: bool  # (B, C, H, W) latent vs (B, N, C) tokens
    c_in: int
    grid: tuple[int, int]  # patch grid of an image latent; (N, 1) for a token latent
    patch: int
    patch_conv: bool  # Conv2d patch embed vs Linear on unfolded patches
    c_txt: int
    text_tokens: int
    freq_dim: int
    flip_sin: bool
    pos: str  # "none" | "abs" (sinusoidal, added) | "rope"
    text_mlp: bool
    pooled: bool  # SD3: pooled text folded into temb
    refiner_name: str
    main_names: tuple[str, ...]
    main_sizes: tuple[int, ...]
    joint_name: str
    joint_size: int
    parallel: bool  # single-stream main blocks use the parallel (one-branch) layout
    txt_first: bool  # token order when text and image are concatenated
    fused_joint: bool
    skip: tuple[int, int] | None  # (src, dst) as main-stack step indices
    skip_proj: bool  # the long skip goes through a Linear

    @property
    def has_text(self):
        return self.feats["dual_stream"] or self.feats["joint"]

    @property
    def tokens(self):
        return self.grid[0] * self.grid[1]

    def main_order(self):
        """(list name, index) of the main blocks in forward order; interleaved lists alternate."""
        order = []
        for i in range(max(self.main_sizes)):
            order += [(name, i) for name, size in zip(self.main_names, self.main_sizes) if i < size]
        return order


def _make_plan(seed):
    rng = random.Random(seed)
    feats = _features(seed)
    heads, head_dim = rng.choice([(1, 16), (2, 8), (2, 12), (2, 16), (4, 8), (4, 12)])
    pos = rng.choice(("none", "abs", "rope"))
    st = _Style(
        hidden=heads * head_dim,
        heads=heads,
        mlp_ratio=rng.choice((1, 2, 3, 4)),
        gated=feats["gated"],
        branch_first=feats["add_order_branch_first"],
        casts=feats["casts"],
        recompute=feats["recompute_cond_in_block"],
        rope=pos == "rope",
        qk_norm=rng.random() < 0.4,
        norm_modules=rng.random() < 0.3,  # each module call costs trace time
        gate_left=rng.random() < 0.5,
        gelu=rng.choice(("none", "tanh")),
        attn=rng.choice(_ATTN_NAMES),
        mlp=rng.choice(_MLP_NAMES),
        norms=rng.choice(_NORM_NAMES),
        ada=rng.choice(_ADA_NAMES),
        table=rng.choice(_TABLE_NAMES),
        streams=rng.choice(_STREAM_NAMES),
        qkv=rng.choice(_QKV_NAMES[:1] * 4 + _QKV_NAMES[1:]),  # mostly fused, again for trace time
        out=rng.choice(_OUT_NAMES),
        updown=rng.choice(_UPDOWN_NAMES),
    )

    has_text = feats["dual_stream"] or feats["joint"]
    text_tokens = rng.randint(4, 8) if has_text else 0
    image_latent = rng.random() < 0.5
    if image_latent:
        patch = rng.choice((1, 2))
        grids = [(h, w) for h in range(2, 6) for w in range(2, 6) if 4 <= h * w <= 24 - text_tokens]
        grid = rng.choice(grids)
    else:
        patch, grid = 1, (rng.randint(6, 24 - text_tokens), 1)

    # Main stack. A long skip needs three main blocks so that src and dst can be non-adjacent. Sizes lean
    # small: a block is 50-90 ops, ~0.2-0.5 s of Dynamo trace on a small CPU.
    if feats["interleaved"]:
        main_sizes = rng.choice(((2, 2), (2, 2), (2, 2), (3, 2)))
    else:
        main_sizes = (rng.choice((3, 3, 3, 4) if feats["long_skip"] else (2, 2, 2, 2, 2, 3)),)
    skip = None
    if feats["long_skip"]:
        n_main = sum(main_sizes)
        src = rng.randint(0, n_main - 3)
        skip = (src, rng.randint(src + 2, n_main - 1))

    list_names = rng.sample(_LIST_NAMES, 4)
    return _Plan(
        st=st,
        feats=feats,
        names={key: rng.choice(pool) for key, pool in _MODEL_NAMES.items()},
        image_latent=image_latent,
        c_in=rng.choice((3, 4, 8, 16)),
        grid=grid,
        patch=patch,
        patch_conv=rng.random() < 0.5,
        c_txt=rng.choice((8, 12, 20)),
        text_tokens=text_tokens,
        freq_dim=rng.choice((32, 64)),
        flip_sin=rng.random() < 0.5,
        pos=pos,
        text_mlp=rng.random() < 0.5,
        pooled=has_text and rng.random() < 0.5,
        refiner_name=list_names[0],
        main_names=tuple(list_names[1 : 1 + len(main_sizes)]),
        main_sizes=main_sizes,
        joint_name=list_names[3],
        joint_size=rng.choice((2, 2, 2, 3)) if feats["joint"] else 0,
        parallel=rng.random() < 0.3,
        txt_first=rng.random() < 0.7,
        fused_joint=rng.random() < 0.5,
        skip=skip,
        skip_proj=rng.random() < 0.5,
    )


# ---------------------------------------------------------------------------------------------------------
# Model


class RandomDiT(nn.Module):
    """Prologue (latent/time/text embeddings, positional invariants), refiner, main stack, joint blocks,
    epilogue (temb-modulated final norm, projection back to the latent shape)."""

    def __init__(self, plan: _Plan):
        super().__init__()
        self.plan = plan
        p, st, names, h = plan, plan.st, plan.names, plan.st.hidden

        if p.image_latent and p.patch_conv:
            latent_in = nn.Conv2d(p.c_in, h, p.patch, stride=p.patch)
        else:
            latent_in = nn.Linear(p.c_in * p.patch * p.patch, h)
        setattr(self, names["latent_in"], latent_in)
        setattr(self, names["time"], nn.Sequential(nn.Linear(p.freq_dim, h), nn.SiLU(), nn.Linear(h, h)))
        if p.has_text:
            text_in = nn.Linear(p.c_txt, h)
            if p.text_mlp:  # PixArt caption projection
                text_in = nn.Sequential(text_in, nn.GELU("tanh"), nn.Linear(h, h))
            setattr(self, names["text"], text_in)
            if p.pooled:
                setattr(self, names["pool"], nn.Linear(p.c_txt, h))

        if p.feats["refiner"]:  # Hunyuan-style text refiner; with no text, an extra stack on the only stream
            use_rope = st.rope and not p.has_text
            refiner = [_SingleBlock(st, parallel=False, use_rope=use_rope) for _ in range(2)]
            setattr(self, p.refiner_name, nn.ModuleList(refiner))
        order = p.main_order()
        lists = {name: [] for name in p.main_names}
        for step, (name, _) in enumerate(order):
            if p.feats["dual_stream"]:
                pruned = p.feats["pruned"] and step == len(order) - 1
                lists[name].append(_DualBlock(st, pruned, p.txt_first))
            else:
                lists[name].append(_SingleBlock(st, p.parallel, st.rope))
        for name in p.main_names:
            setattr(self, name, nn.ModuleList(lists[name]))
        if p.joint_size:
            joint = [_JointCatBlock(st, p.txt_first, p.fused_joint) for _ in range(p.joint_size)]
            setattr(self, p.joint_name, nn.ModuleList(joint))
        if p.skip and p.skip_proj:
            setattr(self, names["skip"], nn.Linear(h, h))

        if not st.recompute:  # PixArt: one shared modulation; each block slices the groups it needs
            widest = max(m.k for m in self.modules() if isinstance(m, _Block))
            setattr(self, names["t_mod"], nn.Linear(h, widest * h))
        setattr(self, names["final_ada"], nn.Linear(h, 2 * h))
        setattr(self, names["head"], nn.Linear(h, p.c_in * p.patch * p.patch))

    def _embed_latent(self, latent):
        p = self.plan
        proj = getattr(self, p.names["latent_in"])
        if not p.image_latent:
            return proj(latent)
        if p.patch_conv:
            return proj(latent).flatten(2).transpose(1, 2)
        gh, gw = p.grid
        patches = latent.unflatten(2, (gh, p.patch)).unflatten(4, (gw, p.patch))  # B, C, gh, p, gw, p
        return proj(patches.permute(0, 2, 4, 1, 3, 5).flatten(3).flatten(1, 2))

    def _unembed(self, x, latent_shape):
        p = self.plan
        if not p.image_latent:
            return x
        gh, gw = p.grid
        x = x.unflatten(1, (gh, gw)).unflatten(-1, (p.patch, p.patch, p.c_in))  # B, gh, gw, p, p, C
        return x.permute(0, 5, 1, 3, 2, 4).reshape(latent_shape)

    def forward(self, hidden_states, timestep, encoder_hidden_states=None):
        p, st, names = self.plan, self.plan.st, self.plan.names

        # Prologue.
        x = self._embed_latent(hidden_states)
        temb = getattr(self, names["time"])(sinusoidal(timestep, p.freq_dim, p.flip_sin).to(x.dtype))
        txt = None
        if p.has_text:
            txt = getattr(self, names["text"])(encoder_hidden_states)
            if p.pooled:
                temb = temb + getattr(self, names["pool"])(encoder_hidden_states.mean(1))
        cond = temb if st.recompute else getattr(self, names["t_mod"])(F.silu(temb))
        n_img = x.shape[1]
        if p.pos == "abs":
            x = x + sinusoidal(torch.arange(n_img, device=x.device), st.hidden).to(x.dtype)
        head_dim = st.hidden // st.heads
        rope_img = rope_table(n_img, head_dim, x) if st.rope else None
        rope_all = rope_table(n_img + p.text_tokens, head_dim, x) if st.rope and p.has_text else None

        # Refiner: text only, or the only stream.
        if p.feats["refiner"]:
            for blk in getattr(self, p.refiner_name):
                if p.has_text:
                    txt = blk(txt, cond, None)
                else:
                    x = blk(x, cond, rope_img)

        # Main stack, possibly interleaved from two lists, with an optional U-ViT long skip.
        order = p.main_order()
        skip = None
        for step, (name, i) in enumerate(order):
            blk = getattr(self, name)[i]
            if p.skip and step == p.skip[1]:
                x = x + (getattr(self, names["skip"])(skip) if p.skip_proj else skip)
            if not p.feats["dual_stream"]:
                x = blk(x, cond, rope_img)
            elif p.feats["pruned"] and step == len(order) - 1:
                x, txt = blk(x, txt, cond, rope_all), None
            else:
                x, txt = blk(x, txt, cond, rope_all)
            if p.skip and step == p.skip[0]:
                skip = x

        # Joint blocks: cat text + image, one branch, slice back.
        if p.joint_size:
            for blk in getattr(self, p.joint_name):
                x, txt = blk(x, txt, cond, rope_all)

        # Epilogue.
        shift, scale = getattr(self, names["final_ada"])(F.silu(temb)).unsqueeze(1).chunk(2, dim=-1)
        x = modulate(F.layer_norm(x, (st.hidden,), eps=1e-6), shift, scale)
        return self._unembed(getattr(self, names["head"])(x), hidden_states.shape)


def _spec(seed, plan):
    f = plan.feats
    lists, paths, kinds = [], [], []
    if f["refiner"]:
        lists.append((plan.refiner_name, 2))
        paths += [f"{plan.refiner_name}.{i}" for i in range(2)]
        kinds += ["refiner"] * 2
    lists += list(zip(plan.main_names, plan.main_sizes))
    order = plan.main_order()
    first_main = len(paths)
    for step, (name, i) in enumerate(order):
        paths.append(f"{name}.{i}")
        if not f["dual_stream"]:
            kinds.append("parallel" if plan.parallel else "single")
        else:
            kinds.append("dual_pruned" if f["pruned"] and step == len(order) - 1 else "dual")
    if plan.joint_size:
        lists.append((plan.joint_name, plan.joint_size))
        paths += [f"{plan.joint_name}.{i}" for i in range(plan.joint_size)]
        kinds += ["joint"] * plan.joint_size
    return ArchSpec(
        seed=seed,
        dual_stream=f["dual_stream"],
        joint_cat_blocks=plan.joint_size,
        gated=f["gated"],
        add_order_branch_first=f["add_order_branch_first"],
        casts=f["casts"],
        pruned_last_block=f["pruned"],
        refiner_blocks=2 if f["refiner"] else 0,
        interleaved=f["interleaved"],
        long_skip=f["long_skip"],
        recompute_cond_in_block=f["recompute_cond_in_block"],
        list_names=tuple(name for name, _ in lists),
        num_blocks=len(paths),
        blocks_per_list=tuple(n for _, n in lists),
        branches_per_block=tuple(_BRANCHES[k] for k in kinds),
        hidden=plan.st.hidden,
        tokens=plan.tokens,
        text_tokens=plan.text_tokens,
        block_paths=tuple(paths),
        block_kinds=tuple(kinds),
        skip_pairs=((first_main + plan.skip[0], first_main + plan.skip[1]),) if plan.skip else (),
    )


def random_dit(seed: int) -> tuple[nn.Module, Callable[..., dict], ArchSpec]:
    """-> (model: eval mode, float32, CPU; make_inputs(batch=1, seed=0, dtype=float32) -> kwargs; spec)."""
    plan = _make_plan(seed)
    with torch.random.fork_rng(devices=[]):  # seeded weights without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = RandomDiT(plan).eval()

    if plan.image_latent:
        latent = (plan.c_in, plan.grid[0] * plan.patch, plan.grid[1] * plan.patch)
    else:
        latent = (plan.tokens, plan.c_in)

    def make_inputs(batch=1, seed=0, dtype=torch.float32):
        g = torch.Generator().manual_seed(seed)
        kwargs = {
            "hidden_states": torch.randn(batch, *latent, generator=g).to(dtype),
            "timestep": torch.rand(batch, generator=g) * 1000,  # float32: the embedding is computed in fp32
        }
        if plan.has_text:
            text = torch.randn(batch, plan.text_tokens, plan.c_txt, generator=g)
            kwargs["encoder_hidden_states"] = text.to(dtype)
        return kwargs

    return model, make_inputs, _spec(seed, plan)
