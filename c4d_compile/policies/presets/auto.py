"""``auto``: the region, forecaster, step variable and full steps chosen on the user's own model.

Nothing here is fixed: ``c4d_compile.calibrate(model_or_pipe, run, "auto", budget=N, out="auto.json")``
tries the library's forecasters on every region, measures each candidate by the error of the final
sample it produces, refines the full steps of the best ones and writes what won; ``c4d_backend("auto",
schedule="auto.json")`` runs it (``calibration/auto.py``). Without the file it is a typed error that
says how to calibrate.
"""

from ..config import Policy, Region
from ..forecasters import Taylor
from ..registry import register
from ..schedules import CalibrationRequired

AUTO = register(
    Policy(
        name="auto",
        region=Region.OUTPUT,  # placeholders: the calibration file says which
        forecaster=Taylor(order=1),
        schedule=CalibrationRequired(),
        fitted=True,
        description="what calibration chose on your model by the final sample's error: region, forecaster, "
                    "variable, full steps (c4d calibrate --policy auto)",
        source="c4d-compile calibration by final-sample error (cf. DPCache arXiv 2602.22654, LeMiCa arXiv "
               "2511.00090)",
    )
)
