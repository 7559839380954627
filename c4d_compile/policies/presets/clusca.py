"""ClusCa (arXiv 2509.10312): TaylorSeer with one fresh token per cluster on every cached step.

Every full step clusters the tokens of each token space (k-means on the stream after the last block
carrying it: FLUX's last double-stream block, separately for image and text; DiT's last block); every
cached step recomputes the token-local branches (the MLPs, proven by the graph) on one random token
per cluster, writes them into the order-0 Taylor term and moves each cluster's other tokens toward it
by γ. Paper defaults on FLUX: interval 5 with 3 warm-up steps, order 1, 16 clusters, γ = 0.005.
"""

from types import MappingProxyType

from ..config import Policy, Region
from ..forecasters import Taylor
from ..registry import register
from ..schedules import IntervalSchedule, SpreadSchedule
from ..tokens import Selection, TokenSubset

CLUSCA = register(
    Policy(
        name="clusca",
        region=Region.BRANCH,
        forecaster=Taylor(order=1),
        schedule=SpreadSchedule(interval=5),
        tokens=TokenSubset(selection=Selection.CLUSTER, clusters=16, propagation=0.005),
        paper=MappingProxyType({"schedule": IntervalSchedule(interval=5, warmup=3), "variable": "step"}),
        description="TaylorSeer; every cached step recomputes the token-local branches on one token per k-means "
                    "cluster (16) and moves the cluster toward it (γ 0.005)",
        source="ClusCa, arXiv 2509.10312 (FLUX: N=5, W=3, O=1, K=16, γ=0.005)",
    )
)
