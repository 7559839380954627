"""Published tables are regenerated from the committed results, and the committed text matches them."""

from pathlib import Path

import pytest
from support.bench_rows import study_result as _result

from c4d_compile.bench import publish as publish_module
from c4d_compile.bench.publish import Block, publish
from c4d_compile.bench.report import read_json, write_json
from c4d_compile.errors import InvalidValueError

ROOT = Path(__file__).parents[2]


def test_the_committed_tables_match_the_committed_results():
    assert publish(ROOT, check=True) == []  # `c4d publish` rewrites what differs


def test_every_block_has_its_results_committed_and_is_used():
    documents = "".join(p.read_text() for pattern in publish_module.DOCUMENTS for p in ROOT.glob(pattern))
    for name, block in publish_module.BLOCKS.items():
        assert (ROOT / block.source).exists(), block.source
        assert f"<!-- results: {name} -->" in documents, name


@pytest.fixture
def tree(tmp_path, monkeypatch):
    write_json(_result(), tmp_path / "bench.json")
    monkeypatch.setattr(publish_module, "BLOCKS", {"t": Block("bench.json", lambda r: f"{len(r.rows)} rows")})
    return tmp_path


def test_a_stale_block_is_found_rewritten_and_then_left_alone(tree):
    doc = tree / "README.md"
    doc.write_text("intro\n<!-- results: t -->\nold\n<!-- /results -->\noutro\n")
    assert publish(tree, check=True) == [doc] and "old" in doc.read_text()  # check writes nothing
    assert publish(tree) == [doc]
    assert doc.read_text() == "intro\n<!-- results: t -->\n9 rows\n<!-- /results -->\noutro\n"
    assert publish(tree) == []


def test_an_unknown_block_names_the_known_ones(tree):
    (tree / "README.md").write_text("<!-- results: nope -->\n<!-- /results -->\n")
    with pytest.raises(InvalidValueError, match="nope.*one of t"):
        publish(tree)


def test_results_read_back_as_written(tmp_path):
    write_json(_result(), tmp_path / "bench.json")
    back = read_json(tmp_path / "bench.json")
    assert back.rows == _result().rows and back.skipped == []
