"""The schema of a checkpoint's `config.json` (pydantic): what its `spec` and top-level fields may
hold, checked before a model is built from it.

Types are strict (a size is a whole number, not `3.5`, `"3"` or `true`), sizes are bounded by
the limits of `nn.spec`, floats must be finite, and the spec allows no unknown fields. The
rest of a config (data, recipe, metrics, history, ...) is free-form: different writers (a
training run, an import) record different facts; only the fields the loader relies on are typed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from cnnscope.errors import UserError
from cnnscope.nn.spec import (
    LAYER_KINDS,
    MAX_IMAGE_SIZE,
    MAX_IN_CHANNELS,
    MAX_KERNEL,
    MAX_LAYERS,
    MAX_NAME_LENGTH,
    MAX_UNITS,
    NORMALIZATIONS,
)

FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]
Kernel = Annotated[StrictInt, Field(ge=0, le=MAX_KERNEL)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LayerSchema(_Strict):
    kind: Literal[LAYER_KINDS]  # type: ignore[valid-type]
    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, strict=True)]
    size: Annotated[StrictInt, Field(ge=0, le=MAX_UNITS)] = 0
    kernel: tuple[Kernel, Kernel] = (0, 0)
    activation: Annotated[str, Field(strict=True, max_length=20)] = "linear"
    padding: Literal["valid", "same"] = "valid"
    rate: Annotated[FiniteFloat, Field(ge=0, lt=1)] = 0.0


class NormalizationSchema(_Strict):
    mode: Literal[NORMALIZATIONS] = "global"  # type: ignore[valid-type]
    mean: FiniteFloat = 0.0
    std: FiniteFloat = 1.0


class SpecSchema(_Strict):
    layers: Annotated[list[LayerSchema], Field(min_length=1, max_length=MAX_LAYERS)]
    in_channels: Annotated[StrictInt, Field(ge=1, le=MAX_IN_CHANNELS)] = 1
    image_size: Annotated[StrictInt, Field(ge=1, le=MAX_IMAGE_SIZE)] = 28
    normalization: NormalizationSchema = NormalizationSchema()


class ConfigSchema(BaseModel):
    """The top level of config.json: the fields the loader uses are typed, others pass."""

    model_config = ConfigDict(extra="allow")
    format: str
    spec: SpecSchema
    weights_sha256: Annotated[str, Field(pattern="^[0-9a-f]{64}$")] | None = None
    epoch: Annotated[StrictInt, Field(ge=0)] | None = None
    step: Annotated[StrictInt, Field(ge=0)] | None = None
    complete: bool | None = None


def checked_spec_dict(data) -> dict:
    """`data` (a spec as `ModelSpec.to_dict` writes it) with defaults filled in, if it fits the
    schema; else a UserError naming the first bad field."""
    return _validated(SpecSchema, data, "model spec").model_dump()


def check_config(data) -> None:
    """A UserError naming the first field of a config.json body that does not fit the schema."""
    _validated(ConfigSchema, data, "config")


def _validated(schema: type[BaseModel], data, what: str) -> BaseModel:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{what} is malformed: {first_problem(exc)}") from None


def first_problem(exc: ValidationError) -> str:
    """One line for a pydantic error: where (`layers.0.size`), what was wrong, and the value."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    value = repr(error.get("input"))
    value = value if len(value) <= 60 else value[:57] + "..."
    detail = "" if error["type"] == "missing" else f", got {value}"
    return f"{where}: {error['msg'].splitlines()[0]}{detail}"
