"""A block stack split by graph breaks is made whole again: the submodule holding the break runs opaquely.

Why: a graph break inside the blocks (Mochi: ``torch.nonzero`` in every attention; HiDream: a Python loop
over per-expert token counts in every mixture-of-experts) leaves no graph holding the whole stack, so
nothing can be cached. Dynamo says where each graph ended (the break's stack of frames); the innermost
frame that is a submodule's ``forward`` names the module class that breaks. Every instance of that class
in the compiled model is then called through one opaque op (``opaque_calls``), and the model's forward is
retraced: one graph, cached as any other. The first forward runs split, uncached; the retrace happens at
the next call (the frame's compiled code is dropped once its first run starts).

Only a part of a block is made opaque (a module strictly inside an element of a module list): a break in
the model's own forward, or in a block's, is left as it is, since hiding the blocks would leave nothing to
cache.
"""

from __future__ import annotations

import logging
import sys

import torch
import torch.fx as fx
from torch import nn

from .opaque_calls import make_opaque

log = logging.getLogger(__name__)


def _compiled_model() -> nn.Module | None:
    """The model ``torch.compile`` wrapped (or ``Module.compile`` compiled in place), found on the call stack while
    one of its graphs runs.

    The compiled module's ``__call__`` is among the callers of every graph of its forward. (Its own forward
    may never yield a graph: Dynamo runs a forward that breaks inside a loop as Python and compiles the calls
    in it one by one, so the graphs alone do not name the model.)
    """
    from torch._dynamo.eval_frame import OptimizedModule

    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, OptimizedModule):
            return owner._orig_mod
        if isinstance(owner, nn.Module) and owner._compiled_call_impl is not None:  # Module.compile (enable_cache)
            return owner
        frame = frame.f_back
    return None


def _span(code) -> tuple[tuple[str, str], int, int]:
    """Where a function's code lies: (file, name) and its first and last line."""
    lines = [line for *_, line in code.co_lines() if line is not None]
    return (code.co_filename, code.co_name), code.co_firstlineno, max(lines, default=code.co_firstlineno)


def _forward_codes(cls: type) -> list:
    """The code of ``cls.forward`` and of every function it wraps (a decorated forward runs both)."""
    codes, fn = [], getattr(cls, "forward", None)
    while fn is not None and hasattr(fn, "__code__"):
        codes.append(fn.__code__)
        fn = getattr(fn, "__wrapped__", None)
    return codes


def _forward_spans(root: nn.Module, skip: set[str]) -> dict[tuple[str, str], list[tuple[int, int, type, bool]]]:
    """Per (file, function name): the forward of each submodule class, its lines, and whether the class is a
    block's part (an instance strictly inside an element of a module list, not the block itself)."""
    parts = {type(part) for lst in root.modules() if isinstance(lst, nn.ModuleList) for block in lst
             for part in block.modules() if part is not block}
    spans: dict[tuple[str, str], list[tuple[int, int, type, bool]]] = {}
    for cls in {type(m) for m in root.modules() if m is not root} - {type(root)}:
        forward = getattr(cls, "forward", None)
        if hasattr(forward, "__code__") and cls.__qualname__ not in skip:
            where, first, last = _span(forward.__code__)
            spans.setdefault(where, []).append((first, last, cls, cls in parts))
    return spans


class SplitRepair:
    """Finds the module classes a split stack breaks in and calls their instances opaquely (once per class)."""

    def __init__(self) -> None:
        self._breaks: list[list] = []  # the frames of each graph break seen since the last repair
        self.breaks = 0  # graph breaks seen
        self.first_break: str | None = None  # the first one's reason and line, for the warning
        self.opaque: dict[str, int] = {}  # class name -> instances called opaquely

    def note_break(self, gm: fx.GraphModule) -> None:
        """Dynamo says why it ended a graph; a graph ended by a graph break names the break and its line."""
        reason = getattr(gm, "compile_subgraph_reason", None)
        if reason is None or not getattr(reason, "graph_break", False):
            return
        frames = list(getattr(reason, "user_stack", None) or [])
        self._breaks.append(frames)
        self.breaks += 1
        if self.first_break is None:
            user = [f for f in frames if "/torch/" not in f.filename]
            where = f"{user[-1].filename.split('site-packages/')[-1]}:{user[-1].lineno}" if user else "?"
            self.first_break = f"{reason.reason.splitlines()[0].strip()!r} at {where}"

    @staticmethod
    def _breaking_class(frames: list, spans: dict) -> type | None:
        """The class of the innermost submodule whose forward holds a break, if it is a block's part."""
        for frame in reversed(frames):
            for first, last, cls, part in spans.get((frame.filename, frame.name), ()):
                if first <= frame.lineno <= last:
                    return cls if part else None
        return None

    def repair(self) -> str | None:
        """Make the breaking classes opaque and drop the model's compiled forward; what was done, or None.

        Called from a graph of the split model while it runs (its compiled module is up the call stack)."""
        root = _compiled_model()
        if root is None:
            return None
        spans = _forward_spans(root, skip=set(self.opaque))
        classes = dict.fromkeys(c for frames in self._breaks if (c := self._breaking_class(frames, spans)))
        self._breaks.clear()
        if not classes:
            return None
        for cls in classes:
            instances = [m for m in root.modules() if type(m) is cls]
            for module in instances:
                make_opaque(module)
            self.opaque[cls.__qualname__] = len(instances)
        for code in _forward_codes(type(root)):  # the next call traces the forward again
            torch._dynamo.reset_code(code)
        done = (f"c4d: graph breaks in {', '.join(c.__qualname__ for c in classes)} split the block stack; "
                "they now run as opaque calls and the forward is traced again as one graph")
        log.info(done)
        return done
