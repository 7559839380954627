"""``plan.json``: everything a runtime in any language needs to run the exported cached sampler.

    format, version       "c4d-export", 1
    policy                the preset name and its options (what was exported, for people)
    num_steps             step calls per context the program is for
    inputs                the caller's inputs: name, shape, dtype (shapes are static)
    fixed                 non-tensor keyword arguments and the values they were traced with
    timesteps             inputs whose first value tells the step (the guidance context and generation)
    outputs               "tensor" or "tuple", and how many model outputs each variant returns first
    variants              per kind: ONNX file, sha256, named inputs and named outputs ("next:" + name in the file)
    state                 the state spec: name, shape, dtype, kind, written_by, read_by, shifts_from, source, ...
    program               per step: the variants run before it in the same call (prelude), the variant, its forecast
                          weights (or null) and the full steps they are over, DECIDE's force flag (or null), a
                          partial step's token inputs, the timestep the weights are for (variable="timestep")
    host_inputs           inputs a program step gives (token subsets: rows, or one draw per token): shape, dtype
    weights               the shared external-data file: name, size and sha256
    checksum              sha256 of everything else (sorted keys): an edited or damaged plan is refused

``read_plan`` validates all of it against the files before anything runs: a missing key, a value of
the wrong type, a variant file that changed, a program naming a variant or a state entry the files do
not have — each is an ``ExportFormatError`` naming what is wrong.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ExportFormatError
from ..runtime.interpreter import StepCall
from ..runtime.state_names import FORCE, WEIGHTS
from ..runtime.step_program import StateTensor, VariantKind
from .capture import ModelInput

FORMAT, VERSION = "c4d-export", 1
PLAN_FILE = "plan.json"
DTYPES = {str(d).removeprefix("torch."): d for d in (torch.float32, torch.float16, torch.bfloat16, torch.float64,
                                                     torch.int64, torch.int32, torch.bool)}


@dataclass(frozen=True)
class VariantFile:
    kind: VariantKind
    file: str
    sha256: str
    num_outputs: int
    inputs: tuple[str, ...]  # named inputs, after the caller's
    outputs: tuple[str, ...]  # named outputs, after the model's


@dataclass(frozen=True)
class ExportedPlan:
    policy: dict
    num_steps: int
    inputs: tuple[ModelInput, ...]
    fixed: dict
    timesteps: tuple[str, ...]
    outputs: str
    variants: dict[VariantKind, VariantFile]
    state: tuple[StateTensor, ...]
    program: tuple[StepCall, ...]
    num_slots: int
    weights_file: str
    weights_bytes: int
    host_inputs: tuple[ModelInput, ...] = ()
    weights_sha256: str = ""

    def to_json(self) -> dict:
        return {
            "format": FORMAT, "version": VERSION, "policy": self.policy, "num_steps": self.num_steps,
            "inputs": [_input_json(x) for x in self.inputs],
            "fixed": self.fixed, "timesteps": list(self.timesteps), "outputs": self.outputs,
            "num_slots": self.num_slots,
            "variants": {k.value: {"file": v.file, "sha256": v.sha256, "num_outputs": v.num_outputs,
                                   "inputs": list(v.inputs), "outputs": list(v.outputs)}
                         for k, v in self.variants.items()},
            "state": [_state_json(e) for e in self.state],
            "program": [step.to_json() for step in self.program],
            "weights": {"file": self.weights_file, "bytes": self.weights_bytes, "sha256": self.weights_sha256},
            "host_inputs": [_input_json(x) for x in self.host_inputs],
        }


def content_checksum(raw: dict) -> str:
    body = {key: value for key, value in raw.items() if key != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def write_plan(plan: ExportedPlan, directory: Path) -> Path:
    path = Path(directory) / PLAN_FILE
    raw = plan.to_json()
    raw["checksum"] = content_checksum(raw)
    path.write_text(json.dumps(raw, indent=1, default=str))  # policy options that are paths: their text
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_plan(directory: Path, verify_weights: bool = False) -> ExportedPlan:
    """The validated plan of an exported folder; ``verify_weights`` also hashes ``weights.bin`` (its size is
    always checked; hashing reads the whole file)."""
    directory = Path(directory)
    path = directory / PLAN_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExportFormatError(f"{path} not found: not an exported directory (c4d export writes one)") from None
    except json.JSONDecodeError as err:
        raise ExportFormatError(f"{path} is not valid JSON: {err}") from None
    try:
        plan = _parse(raw)
    except ExportFormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ExportFormatError(f"{path} is malformed: {type(err).__name__}: {err}") from None
    _check_files(plan, directory, verify_weights)
    return plan


def _parse(raw: dict) -> ExportedPlan:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ExportFormatError(f"plan.json is not a {FORMAT!r} file")
    if raw.get("version") != VERSION:
        raise ExportFormatError(f"plan.json version {raw.get('version')!r}; this c4d-compile reads version {VERSION}")
    if raw.get("checksum") != content_checksum(raw):
        raise ExportFormatError("plan.json does not match its checksum: it was changed after export (re-export the "
                                "model rather than editing the plan)")
    variants = {}
    for kind, v in _mapping(raw["variants"], "variants").items():
        variants[_kind(kind)] = VariantFile(_kind(kind), str(v["file"]), str(v["sha256"]), _int(v["num_outputs"]),
                                            _names(v["inputs"]), _names(v["outputs"]))
    state = tuple(_state(e) for e in raw["state"])
    num_slots = _int(raw["num_slots"])
    program = tuple(_step(s, num_slots) for s in raw["program"])
    plan = ExportedPlan(
        policy=_mapping(raw["policy"], "policy"), num_steps=_int(raw["num_steps"]),
        inputs=tuple(_input(x) for x in raw["inputs"]), host_inputs=tuple(_input(x) for x in raw["host_inputs"]),
        fixed=_mapping(raw["fixed"], "fixed"), timesteps=_names(raw["timesteps"]), outputs=str(raw["outputs"]),
        variants=variants, state=state, program=program, num_slots=num_slots,
        weights_file=str(raw["weights"]["file"]), weights_bytes=_int(raw["weights"]["bytes"]),
        weights_sha256=str(raw["weights"]["sha256"]))
    _check_consistent(plan)
    return plan


def _check_consistent(plan: ExportedPlan) -> None:
    """The plan names only what it has: variants, state entries, inputs; the program fits its length."""
    if VariantKind.FULL not in plan.variants:
        raise ExportFormatError("plan.json has no full variant")
    if len(plan.program) != plan.num_steps:
        raise ExportFormatError(f"plan.json's program has {len(plan.program)} steps for num_steps={plan.num_steps}")
    if plan.outputs not in ("tensor", "tuple"):
        raise ExportFormatError(f"plan.json outputs {plan.outputs!r}; expected 'tensor' or 'tuple'")
    input_names = {x.name for x in plan.inputs}
    for name in plan.timesteps:
        if name not in input_names:
            raise ExportFormatError(f"plan.json's timestep input {name!r} is not one of its inputs")
    state = {e.name for e in plan.state}
    host = {x.name: x for x in plan.host_inputs}
    for e in plan.state:
        for name in (e.shifts_from, e.source):
            if name is not None and name not in state and not any(name in v.outputs for v in plan.variants.values()):
                raise ExportFormatError(f"state entry {e.name!r} refers to {name!r}, which nothing writes")
    for i, step in enumerate(plan.program):
        for kind in (*step.prelude, step.variant):
            if kind not in plan.variants:
                raise ExportFormatError(f"step {i} runs the {kind.value} variant, which plan.json does not list")
        variant = plan.variants[step.variant]
        produced = {name for kind in step.prelude for name in plan.variants[kind].outputs}
        for name, given, what in ((WEIGHTS, step.weights, "forecast weights"), (FORCE, step.force, "force")):
            if (name in variant.inputs) != (given is not None):
                raise ExportFormatError(f"step {i}: the {step.variant.value} variant "
                                        f"{'reads' if name in variant.inputs else 'does not read'} {what}")
        for name, values in step.tokens.items():
            spec = host.get(name)
            if spec is None or name not in variant.inputs or len(values) != spec.shape[0]:
                raise ExportFormatError(f"step {i}: host input {name!r} with {len(values)} values does not fit the "
                                        f"{step.variant.value} variant (host inputs: {sorted(host)})")
        missing = [n for n in variant.inputs if n not in state and n not in produced and n not in (WEIGHTS, FORCE)
                   and n not in step.tokens]
        if missing:
            raise ExportFormatError(f"step {i}: the {step.variant.value} variant reads {missing}, which neither the "
                                    "state nor the variants run before it provide")


def _check_files(plan: ExportedPlan, directory: Path, verify_weights: bool) -> None:
    weights = directory / plan.weights_file
    if not weights.is_file() or weights.stat().st_size != plan.weights_bytes:
        found = weights.stat().st_size if weights.is_file() else "missing"
        raise ExportFormatError(f"{weights}: expected {plan.weights_bytes} bytes, found {found}")
    if verify_weights and file_sha256(weights) != plan.weights_sha256:
        raise ExportFormatError(f"{weights} does not match plan.json (sha256 differs): the weights were damaged")
    for v in plan.variants.values():
        path = directory / v.file
        if not path.is_file():
            raise ExportFormatError(f"{path} is missing ({v.kind.value} variant)")
        if file_sha256(path) != v.sha256:
            raise ExportFormatError(f"{path} does not match plan.json (sha256 differs): re-export the model")


def _input_json(x: ModelInput) -> dict:
    return {"name": x.name, "shape": list(x.shape), "dtype": _dtype_name(x.dtype)}


def _input(raw: dict) -> ModelInput:
    return ModelInput(str(raw["name"]), tuple(_int(d) for d in raw["shape"]), _dtype(raw["dtype"]))


def _state_json(e: StateTensor) -> dict:
    return {"name": e.name, "shape": list(e.shape), "dtype": _dtype_name(e.dtype), "kind": e.kind,
            "written_by": [k.value for k in e.written_by], "read_by": [k.value for k in e.read_by],
            "shifts_from": e.shifts_from, "source": e.source,
            "shifted_by": None if e.shifted_by is None else [k.value for k in e.shifted_by],
            "initial_zeros": e.initial_zeros}


def _state(raw: dict) -> StateTensor:
    shifted = raw["shifted_by"]
    return StateTensor(str(raw["name"]), tuple(_int(d) for d in raw["shape"]), _dtype(raw["dtype"]), str(raw["kind"]),
                       tuple(_kind(k) for k in raw["written_by"]), tuple(_kind(k) for k in raw["read_by"]),
                       _optional_str(raw["shifts_from"]), _optional_str(raw["source"]),
                       None if shifted is None else tuple(_kind(k) for k in shifted), bool(raw["initial_zeros"]))


def _step(raw: dict, num_slots: int) -> StepCall:
    weights = raw["weights"]
    if weights is not None:
        weights = tuple(float(w) for w in weights)
        if len(weights) != num_slots:
            raise ExportFormatError(f"a program step has {len(weights)} forecast weights for {num_slots} slots")
    force = raw["force"]
    if force is not None and not isinstance(force, bool):
        raise ExportFormatError(f"a program step's force is {force!r}; expected true, false or null")
    tokens = {str(name): tuple(values) for name, values in _mapping(raw["tokens"], "tokens").items()}
    timestep = raw["timestep"]
    if timestep is not None and (isinstance(timestep, bool) or not isinstance(timestep, (int, float))):
        raise ExportFormatError(f"a program step's timestep is {timestep!r}; expected a number or null")
    return StepCall(_kind(raw["variant"]), weights, tuple(_int(s) for s in raw["history"]),
                       tuple(_kind(k) for k in raw["prelude"]), force, tokens,
                       None if timestep is None else float(timestep))


def _kind(value: str) -> VariantKind:
    try:
        return VariantKind(value)
    except ValueError:
        raise ExportFormatError(f"unknown variant kind {value!r}; valid: {[k.value for k in VariantKind]}") from None


def _dtype(value: str) -> torch.dtype:
    if value not in DTYPES:
        raise ExportFormatError(f"unknown dtype {value!r}; valid: {sorted(DTYPES)}")
    return DTYPES[value]


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExportFormatError(f"expected an integer, found {value!r}")
    return value


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ExportFormatError(f"expected a list of names, found {value!r}")
    return tuple(value)


def _mapping(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise ExportFormatError(f"plan.json {what!r} must be an object, found {type(value).__name__}")
    return value


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)
