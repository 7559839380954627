"""LeastSquares: fitted weights looked up by the forecast's coordinates, the polynomial elsewhere, and its table
carried through a calibration file's JSON."""

import json

import pytest

from c4d_compile import InvalidValueError
from c4d_compile.policies.config import forecaster_from_spec, forecaster_spec
from c4d_compile.policies.forecasters import AdamsBashforth, LeastSquares

TABLE = ((5.0, (4.0, 2.0), (1.25, -0.5)), (7.0, (6.0, 4.0, 2.0), (0.9, 0.2, -0.05)))


def test_a_fitted_step_gets_its_weights_and_any_other_the_polynomial():
    f = LeastSquares(slots=3, table=TABLE)
    assert f.num_slots == 3
    assert f.weights(5.0, [4.0, 2.0]) == (1.25, -0.5)
    assert f.weights(7.0 + 1e-9, [6.0, 4.0, 2.0 - 1e-9]) == (0.9, 0.2, -0.05)  # coordinates compared rounded
    assert f.weights(6.0, [4.0, 2.0]) == pytest.approx(AdamsBashforth(order=2).weights(6.0, [4.0, 2.0]))
    # a longer history than its slots reads its newest slots only (as the Runtime hands it)
    assert LeastSquares(slots=2, table=TABLE[:1]).weights(5.0, [4.0, 2.0, 0.0]) == (1.25, -0.5)


def test_its_table_survives_a_calibration_file():
    f = LeastSquares(slots=3, table=TABLE)
    again = forecaster_from_spec(json.loads(json.dumps(forecaster_spec(f))))  # tuples come back as lists
    assert again == f and again.weights(5.0, [4.0, 2.0]) == (1.25, -0.5)


@pytest.mark.parametrize("table", [((5.0, (4.0, 2.0), (1.0,)),), ((5.0, (4.0, 3.0, 2.0, 1.0), (1, 0, 0, 0)),),
                                   ((5.0, "x"),), ((5.0, (), ()),)])
def test_a_malformed_table_is_a_typed_error(table):
    with pytest.raises(InvalidValueError, match="table row"):
        LeastSquares(slots=3, table=table)
