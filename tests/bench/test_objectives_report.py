"""The objectives study's tables: one line per search and budget, one line of rank correlations per budget."""

from c4d_compile.bench.objectives_report import objectives_table


def test_each_search_and_each_budget_gets_its_line():
    search = {"full_steps": [0, 5], "predicted_additive": 0.661, "measured": 0.142,
              "scored_psnr": {"mean": 49.41, "worst": 44.1}}
    at = {"searches": {"spread": search, "local search": {**search, "measured": 0.131, "predicted_additive": None}},
          "rank_correlation": {"feature error": 0.74, "summed": 0.89}, "random_schedules": 120}
    text = objectives_table({"steps": 50, "span": 14, "budgets": {"10": at, "5": at}})
    searches, ranks = text.split("\n\n")
    assert searches.splitlines()[2:] == ["| 10 | spread | 0.661 | 0.142 | 49.41 / 44.10 |",
                                         "| 10 | local search | – (a segment over 14 steps) | 0.131 | 49.41 / 44.10 |",
                                         "| 5 | spread | 0.661 | 0.142 | 49.41 / 44.10 |",
                                         "| 5 | local search | – (a segment over 14 steps) | 0.131 | 49.41 / 44.10 |"]
    assert ranks.splitlines()[0].count("rank correlation") == 2
    assert ranks.splitlines()[2:] == ["| 10 | 120 | 0.74 | 0.89 |", "| 5 | 120 | 0.74 | 0.89 |"]
