"""Compile: from a Dynamo graph and a policy to a cache plan and one lowered callable per variant kind.

``backend.py`` drives it (analysis passes, plan, rewrites, lowering) and hands each compiled graph a Runtime
bound to the backend's session; ``registered_backend.py`` serves ``torch.compile(m, backend="c4d")``.
See ``docs/architecture.md``.
"""
