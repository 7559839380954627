"""Which presets the all-presets tests run.

With ``interval=1`` every preset's schedule is a fixed one that computes every step, so only its FULL
variant runs, and that graph depends on the region and the token selection alone (the forecaster and the
schedule change what cached steps read, not the full step). The tests that check ``interval=1`` is
bit-exact run one preset per such group; ``tests/test_models.py`` checks that each other preset builds the
same full graph as its group's representative, so a preset that stops fitting its group is caught.
"""

from __future__ import annotations

from c4d_compile import get_policy, list_policies


def interval_one_group(name: str) -> tuple:
    policy = get_policy(name, interval=1)
    return policy.region, policy.tokens.selection if policy.tokens else None, type(policy.schedule)


def interval_one_presets() -> dict[str, list[str]]:
    """Representative -> the presets whose interval=1 graphs are its own (itself first)."""
    groups: dict[tuple, list[str]] = {}
    for name in list_policies(fitted=False):
        groups.setdefault(interval_one_group(name), []).append(name)
    return {members[0]: members for members in groups.values()}
