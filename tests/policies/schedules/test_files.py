"""The tagged JSON files of calibration: read back what is written, refuse a file of another format, a schedule
field given as a file's path, and a file recorded on another graph."""

import json
from dataclasses import dataclass, field

import pytest

from c4d_compile import ConfigError
from c4d_compile.policies.schedules.files import check_same_graph, field_from_file, read_tagged, write_tagged

FORM = "test-form/1"


@dataclass(frozen=True)
class Fitted:
    values: object = ()
    source: str = field(default="", compare=False)
    graph: str = field(default="", compare=False)


def _read(path):
    return read_tagged(path, FORM, "test")


def test_what_is_written_is_tagged_read_back_and_returned_by_its_path(tmp_path):
    read = []
    path = write_tagged(tmp_path / "new" / "f.json", FORM, {"values": [1, 2]}, lambda p: read.append(p) or _read(p))
    assert path == tmp_path / "new" / "f.json" and read == [path]
    assert json.loads(path.read_text()) == {"format": FORM, "values": [1, 2]} and path.read_text().endswith("}\n")
    assert _read(path) == {"format": FORM, "values": [1, 2]}


@pytest.mark.parametrize("text,match", [
    (None, "cannot read test"), ("{not json", "cannot read test"), ("[1]", "not a test file"),
    ('{"format": "other/1"}', "expected format 'test-form/1'"),
])
def test_a_missing_unreadable_or_foreign_file_is_a_typed_error(tmp_path, text, match):
    path = tmp_path / "f.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        _read(path)


def test_a_file_that_does_not_read_back_is_refused_when_written(tmp_path):
    def strict(path):
        raise ConfigError(f"{path}: no")

    with pytest.raises(ConfigError, match="no"):
        write_tagged(tmp_path / "f.json", FORM, {}, strict)


def test_a_field_given_as_a_path_is_the_files_value_and_the_schedule_notes_the_file_and_its_graph(tmp_path):
    path = write_tagged(tmp_path / "f.json", FORM, {"values": [3], "fingerprint": {"graph": "abc"}}, _read)
    schedule = Fitted()
    assert field_from_file(schedule, str(path), _read, "values") == [3]
    assert schedule.source == str(path) and schedule.graph == "abc"
    bare = write_tagged(tmp_path / "g.json", FORM, {"values": [4]}, _read)
    schedule = Fitted()
    assert field_from_file(schedule, bare, _read, "values") == [4] and schedule.graph == ""  # a Path works too


def test_any_other_value_is_the_value_itself():
    schedule = Fitted()
    assert field_from_file(schedule, (1.0, 2.0), _read, "values") == (1.0, 2.0) and schedule.source == ""


def test_a_file_of_another_graph_is_refused_naming_both_and_one_without_a_graph_is_not_checked():
    schedule = Fitted(source="fit.json", graph="abc")
    check_same_graph(schedule, {"graph": "abc"}, "ratios")
    with pytest.raises(ConfigError, match=r"in 'fit.json' came from another model \(graph abc, this one xyz"):
        check_same_graph(schedule, {"graph": "xyz"}, "ratios")
    check_same_graph(Fitted(), {"graph": "xyz"}, "ratios")
