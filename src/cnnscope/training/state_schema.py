"""The schema (pydantic) of the JSON a training state carries next to its tensors: every key
required, no unknown key, whole numbers where counts are meant, finite normalisation constants.

A state that does not fit is refused with one line naming the field, before anything is built.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    create_model,
)

from cnnscope.errors import UserError
from cnnscope.nn.checkpoint_schema import first_problem
from cnnscope.training.settings import TrainSettings
from cnnscope.training.state import EpochRecord

Count = Annotated[StrictInt, Field(ge=0)]
Number = Annotated[float, Field(strict=True)]  # metrics may be NaN (a diverged run); ints pass as floats
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Scalar = StrictBool | StrictInt | Number | None

# one history row: exactly the fields of EpochRecord (ints for its int fields, numbers for the rest)
RecordSchema = create_model(
    "RecordSchema", __config__=ConfigDict(extra="forbid"),
    **{f.name: (Count if f.type == "int" else Number, ...) for f in fields(EpochRecord) if f.name != "images"},
    images=(Count, 0),
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSchema(BaseModel):
    """What the run trained on; mean and std normalise the model's input."""

    model_config = ConfigDict(extra="allow")
    mean: Finite
    std: Annotated[Finite, Field(gt=0)]


class MetaSchema(_Strict):
    settings: dict[str, Any]
    epoch: Count
    step: Count
    train_seconds: Annotated[Finite, Field(ge=0)]
    history: list[RecordSchema]  # type: ignore[valid-type]
    param_groups: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=16)]
    optim_scalars: dict[Annotated[str, Field(pattern=r"^[0-9]{1,6}$")], dict[str, Scalar]]
    data: DataSchema


def checked_meta(meta) -> dict:
    """`meta` if it fits the schema and its settings are known, valid settings; else a UserError."""
    try:
        MetaSchema.model_validate(meta)
    except ValidationError as exc:
        raise UserError(first_problem(exc)) from None
    unknown = sorted(set(meta["settings"]) - {f.name for f in fields(TrainSettings)})
    if unknown:
        raise UserError(f"settings: unknown field {unknown[0]!r}")
    if len(meta["history"]) != meta["epoch"] or [r["epoch"] for r in meta["history"]] != list(range(1, meta["epoch"] + 1)):
        raise UserError(f"history: {len(meta['history'])} epoch records do not describe epochs 1..{meta['epoch']}")
    return meta
