"""ClusCa (arXiv 2509.10312): TaylorSeer with one fresh token per cluster on every cached step.

Every full step clusters the tokens of each token space (k-means on the stream after the last block
carrying it: FLUX's last double-stream block, separately for image and text; DiT's last block); every
cached step recomputes the token-local branches (the MLPs, proven by the graph) on one random token
per cluster, writes them into the order-0 Taylor term and moves each cluster's other tokens toward it
by γ. Paper defaults on FLUX: interval 5 with 3 warm-up steps, order 1, 16 clusters, γ = 0.005.

The fresh rows are the forecast at their step (``anchor="step"``) by default: on the trained reference
models that scored up to 2 dB above writing them into the order-0 Taylor term as the reference code does
(``schedule="paper"`` restores it).
"""

from types import MappingProxyType

from ..config import Policy, Region
from ..forecasters import Taylor
from ..registry import register
from ..schedules import IntervalSchedule, SpreadSchedule
from ..tokens import Anchor, Selection, TokenSubset

CLUSCA = register(
    Policy(
        name="clusca",
        region=Region.BRANCH,
        forecaster=Taylor(order=1),
        schedule=SpreadSchedule(interval=5),
        tokens=TokenSubset(selection=Selection.CLUSTER, clusters=16, propagation=0.005, anchor=Anchor.STEP),
        paper=MappingProxyType({"schedule": IntervalSchedule(interval=5, warmup=3), "variable": "step",
                                "anchor": "order0"}),
        description="TaylorSeer; every cached step recomputes the token-local branches on one token per k-means "
                    "cluster (16) and moves the cluster toward it (γ 0.005)",
        source="ClusCa, arXiv 2509.10312 (FLUX: N=5, W=3, O=1, K=16, γ=0.005)",
    )
)
