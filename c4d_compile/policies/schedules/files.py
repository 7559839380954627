"""Small JSON files that calibration writes and schedules read, each tagged with its format."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import ConfigError


def read_tagged(path: str | Path, form: str, what: str) -> dict[str, Any]:
    """The JSON object in ``path``, which must carry ``"format": form``; a typed error naming ``what`` else."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {err}") from None
    if not isinstance(data, dict) or data.get("format") != form:
        raise ConfigError(f"{path}: not a {what} file (expected format {form!r})")
    return data


def write_tagged(path: str | Path, form: str, data: dict[str, Any], read: Callable[[Path], Any]) -> Path:
    """Write ``data`` tagged with ``form``, and read it back with ``read``: what we write, we can read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": form, **data}, indent=1) + "\n")
    read(path)
    return path


def field_from_file(schedule: Any, value: Any, read: Callable[[str | Path], dict], key: str) -> Any:
    """A schedule field given as the path of a calibration file: the file's ``key``, with the file and the graph
    it was recorded on noted on the (frozen) schedule as ``source`` and ``graph``. Any other value as it is."""
    if not isinstance(value, (str, Path)):
        return value
    data = read(value)
    object.__setattr__(schedule, "source", str(value))
    object.__setattr__(schedule, "graph", str(data.get("fingerprint", {}).get("graph", "")))
    return data[key]


def check_same_graph(schedule: Any, fingerprint: dict, what: str) -> None:
    """A file recorded on another model's graph is refused, naming both fingerprints."""
    if schedule.graph and schedule.graph != fingerprint.get("graph"):
        raise ConfigError(f"the {what} in {schedule.source!r} came from another model (graph {schedule.graph}, "
                          f"this one {fingerprint.get('graph')}): calibrate on this one")
