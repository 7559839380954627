"""The names of the state entries and host inputs a plan declares: one function per kind of name, so a
rewrite pass, the Runtime and the export spell each one the same way."""

from __future__ import annotations

WEIGHTS = "weights"  # host input: forecast weights over the history slots, newest first
FORCE = "force"  # host input of DECIDE: a 0-d bool, true on steps the schedule computes whatever the signal says
SIGNAL_VALUE, SIGNAL_FULL = "signal.value", "signal.full"  # DECIDE's outputs for stats: the signal, the decision


def history_names(feature, slots: int) -> list[str]:
    """State names of a feature's history (a plan's CachedFeature), newest first."""
    return [f"{feature.name}@{age}" for age in range(slots)]


def refreshed_name(feature: str) -> str:
    """State name of a token-local feature's newest value with the rows partial calls recomputed."""
    return f"{feature}.refreshed"


def token_index_name(tokens: int) -> str:
    """Host input of a partial call: the rows to recompute in a token space of ``tokens`` rows."""
    return f"tokens.{tokens}.index"


def token_noise_name(tokens: int) -> str:
    """Host input of a clustered partial call: one uniform draw per token, which picks each cluster's token."""
    return f"tokens.{tokens}.noise"


def centroids_name(tokens: int) -> str:
    return f"tokens.{tokens}.centroids"


def labels_name(tokens: int) -> str:
    return f"tokens.{tokens}.labels"


def score_name(tokens: int) -> str:
    """Score selection: each token's importance at the last full step."""
    return f"tokens.{tokens}.score"


def staleness_name(tokens: int) -> str:
    """Score selection: partial calls since each token was last recomputed."""
    return f"tokens.{tokens}.staleness"
