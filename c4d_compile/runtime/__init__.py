"""Run: what happens at each step call of a compiled model.

The session (what lives across calls), clocks and contexts (which step, which guidance branch), the cache state,
the step interpreter (what a call runs) and the Runtime that executes it on compiled variants, stats. The
runtime reads the compiler's products (``CachePlan``, lowered variants) but never imports the compiler.
See ``docs/architecture.md``.
"""
