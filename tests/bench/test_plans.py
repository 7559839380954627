import pytest

from c4d_compile.bench.methods import C4DPreset
from c4d_compile.bench.peers import PEERS
from c4d_compile.bench.plans import FULL, QUICK
from c4d_compile.errors import InvalidValueError, UnknownPolicyError
from c4d_compile.policies import list_policies


def test_full_plan_runs_every_preset_and_every_peer():
    methods = FULL.methods()
    assert [m.label for m in methods if isinstance(m, C4DPreset)] == list_policies(fitted=False)
    assert len(methods) == len(list_policies(fitted=False)) + len(PEERS)
    assert FULL.models == ("dit", "flux", "dit-eps", "flux-bench", "wan")


def test_budget_plan_compares_at_equal_compute():
    from c4d_compile.bench.methods import C4DCalibrated
    from c4d_compile.bench.plans import BUDGETS

    plan = BUDGETS.with_overrides(policies=("taylorseer", "abcache"), budgets=(10,))
    labels = [m.label for m in plan.methods()]
    assert labels == [
        "auto@10", "auto fast@10", "taylorseer @10", "taylorseer paper@10", "taylorseer calibrated@10",
        "abcache @10", "abcache paper@10", "abcache calibrated@10",
        "diffusers-taylorseer@10", "diffusers-taylorseer-lite@10", "cache-dit-taylorseer@10",
    ]
    assert any(isinstance(m, C4DCalibrated) for m in plan.methods())
    assert BUDGETS.shifts == (1.0, 3.0) and set(BUDGETS.models) == {"dit", "flux", "dit-eps"}
    with pytest.raises(InvalidValueError, match="budget"):
        BUDGETS.with_overrides(budgets=(60,)).methods()


def test_quick_plan_is_small():
    assert QUICK.repeats == 1 and QUICK.per_class == 1 and set(QUICK.models) == {"dit", "flux"}
    assert len(QUICK.methods()) <= 6


def test_overrides_replace_only_what_is_given():
    plan = QUICK.with_overrides(models=("wan",), repeats=None)
    assert plan.models == ("wan",) and plan.repeats == QUICK.repeats


@pytest.mark.parametrize(
    "overrides, error, listed",
    [
        ({"policies": ("taylorsear",)}, UnknownPolicyError, "taylorseer-lite"),
        ({"peers": ("teacache",)}, InvalidValueError, "peer"),
        ({"models": ("sdxl",)}, InvalidValueError, "flux-bench"),
    ],
)
def test_bad_names_fail_before_running_and_list_the_valid_ones(overrides, error, listed):
    with pytest.raises(error, match=listed):
        QUICK.with_overrides(**overrides).methods()


def test_unknown_plan_option_is_rejected():
    with pytest.raises(InvalidValueError, match="repeats"):
        QUICK.with_overrides(repeat=3)


def test_signal_plan_sets_every_adaptive_preset_and_signal_peer_at_each_threshold():
    from c4d_compile.bench.methods import C4DMagnitude
    from c4d_compile.bench.plans import BUDGETS, SIGNALS

    plan = SIGNALS.with_overrides(thresholds=(0.1, 0.2), budgets=(10,))
    labels = [m.label for m in plan.methods()]
    for threshold in ("0.1", "0.2"):
        for name in ("fbcache", "teacache", "customcache", "magcache", "diffusers-fbcache", "diffusers-magcache",
                     "cache-dit-dbcache", "cache-dit-dbcache+taylorseer"):
            assert f"{name} τ{threshold}" in labels
    assert labels[-1] == "taylorseer @10"  # the library's fixed schedule at a budget beside them
    assert sum(isinstance(m, C4DMagnitude) for m in plan.methods()) == 2  # ratios recorded per workload
    assert not {"fbcache", "teacache", "magcache"} & set(BUDGETS.policies)  # a budget would replace their rule


def test_a_row_may_carry_its_own_options_and_is_labelled_with_them():
    plan = QUICK.with_overrides(policies=("clusca", "clusca[anchor=order0, clusters=4]", "toca[selection=random]"),
                                peers=())
    rows = plan.methods()
    assert [m.label for m in rows] == ["clusca", "clusca[anchor=order0,clusters=4]", "toca[selection=random]"]
    assert rows[1].overrides == {"anchor": "order0", "clusters": 4}  # a number read as one
    (book,) = QUICK.with_overrides(policies=("taylorseer[codebook=((0.03,12),(1.0,3)),threshold=0.5]",),
                                   peers=()).methods()
    assert book.overrides == {"codebook": ((0.03, 12), (1.0, 3)), "threshold": 0.5}  # commas inside a value
    from c4d_compile.errors import UnknownOptionError

    with pytest.raises(UnknownOptionError, match="clusters"):
        QUICK.with_overrides(policies=("clusca[cluster=4]",)).methods()
    with pytest.raises(InvalidValueError, match=r"name\[key=value"):
        QUICK.with_overrides(policies=("clusca[clusters]",)).methods()
    (whole,) = QUICK.with_overrides(policies=("taylorseer[narrow_projections=False]",), peers=()).methods()
    assert whole.overrides == {"narrow_projections": False}  # how it compiles: a setting, routed by c4d_backend
    with pytest.raises(InvalidValueError, match="narrow_projections"):
        QUICK.with_overrides(policies=("taylorseer[narrow_projections=2]",)).methods()


def test_a_run_records_its_command_as_a_shell_reads_it_back():
    import shlex

    from c4d_compile.bench.report import run_meta

    argv = ["bench", "--policies", "clusca[clusters=4]", "taylorseer[codebook=((0.03,12),(1.0,3))]"]
    assert shlex.split(run_meta(argv)["command"]) == ["c4d", *argv]
