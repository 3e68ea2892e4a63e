"""Objectives for gradient ascent: callables over captured activations, one value per image.

An `Objective` maps a dict of layer outputs (`{layer name: tensor}`) to a tensor of shape
(N,), so a batch of N images can chase N different targets in one forward/backward pass
(`per_element`). Objectives form a small algebra (Lucent-style): `a + b`, `a - b`, `2.0 * a`,
`a * 2.0`, `a / 2.0`, `-a`, and `weighted([(a, 1.0), (b, 2.0)])`.

The layer name `LOGITS` ("logits") stands for the model's last layer, whatever it is called;
`capture(model, x, objective)` resolves it. Use `capture` (or `objective_values`) instead of calling
`model.activations` yourself when an objective may contain `logit(k)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from cnnscope.errors import UserError

LOGITS = "logits"

ActivationFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class Target:
    """One unit an objective reads, for validation: `map` (or None = all), optional y, x."""

    layer: str
    map: int | None = None
    y: int | None = None
    x: int | None = None


class Objective:
    """A callable `obj(acts) -> Tensor (N,)` plus the layers it needs and a readable name."""

    def __init__(
        self,
        fn: ActivationFn,
        layers: Sequence[str],
        name: str,
        targets: Sequence[Target] = (),
        select: Callable[[torch.Tensor], Objective] | None = None,
        kind: str = "custom",
        picks: tuple[str, torch.Tensor | int] | None = None,
    ):
        self.fn = fn
        self.kind = kind  # "channel", "node", "layer", "per_element" or "custom" (algebra results)
        # (layer, maps) when the value is the mean of one map per image (map maps[i] for image i,
        # an int: the same map for all): a network may then compute only those maps (optvis.networks)
        self.picks = picks
        self.layers: tuple[str, ...] = tuple(dict.fromkeys(layers))
        self.name = name
        self.targets: tuple[Target, ...] = tuple(targets)
        self._select = select

    def __call__(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fn(acts)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    def select(self, index: torch.Tensor) -> Objective:
        """The objective for the batch elements `index` only (matters for `per_element`)."""
        return self if self._select is None else self._select(index)

    # ---- algebra ---------------------------------------------------------------------
    def __add__(self, other) -> Objective:
        if isinstance(other, int | float):
            if other == 0:
                return self
            return _unary(self, lambda v: v + other, f"{self.name} + {other:g}")
        if not isinstance(other, Objective):
            return NotImplemented
        return _binary(self, other, lambda a, b: a + b, f"{self.name} + {other.name}")

    def __radd__(self, other) -> Objective:  # sum([...]) starts with 0
        return self.__add__(other)

    def __sub__(self, other) -> Objective:
        if isinstance(other, int | float):
            return self.__add__(-other)
        if not isinstance(other, Objective):
            return NotImplemented
        return _binary(self, other, lambda a, b: a - b, f"{self.name} - {other.name}")

    def __neg__(self) -> Objective:
        return _unary(self, lambda v: -v, f"-({self.name})")

    def __mul__(self, factor) -> Objective:
        if not isinstance(factor, int | float):
            return NotImplemented
        return _unary(self, lambda v: v * factor, f"{factor:g} * {self.name}")

    __rmul__ = __mul__

    def __truediv__(self, divisor) -> Objective:
        if not isinstance(divisor, int | float):
            return NotImplemented
        return self * (1.0 / divisor)


def _unary(obj: Objective, op: Callable[[torch.Tensor], torch.Tensor], name: str) -> Objective:
    def select(index):
        return _unary(obj.select(index), op, name)

    return Objective(lambda acts: op(obj(acts)), obj.layers, name, obj.targets,
                     select if obj._select is not None else None)


def _binary(a: Objective, b: Objective, op, name: str) -> Objective:
    def select(index):
        return _binary(a.select(index), b.select(index), op, name)

    needs_select = a._select is not None or b._select is not None
    return Objective(lambda acts: op(a(acts), b(acts)), a.layers + b.layers, name,
                     a.targets + b.targets, select if needs_select else None)


# ---- building blocks ---------------------------------------------------------------------
def map_means(picked: torch.Tensor) -> torch.Tensor:
    """Mean of one map per image (N x H x W: over y, x; a dense layer's N units: themselves)."""
    return picked.flatten(1).mean(dim=1) if picked.dim() > 1 else picked


def _map_values(out: torch.Tensor, index) -> torch.Tensor:
    """Mean of map(s) `index` per image (conv: over y, x; dense: the unit itself)."""
    picked = out[:, index]
    return picked.mean(dim=(-2, -1)) if picked.dim() >= 3 else picked


def channel(layer: str, map: int) -> Objective:
    """Mean activation of one map of `layer` (the articles' loss); for a dense layer: unit `map`."""
    map = int(map)
    return Objective(lambda acts: _map_values(acts[layer], map), [layer], f"{layer}:{map}",
                     [Target(layer, map)], kind="channel", picks=(layer, map))


def node(layer: str, map: int, y: int | None = None, x: int | None = None) -> Objective:
    """One unit: conv layers -> pixel (y, x) of `map` (default: the centre); dense -> unit `map`."""
    map = int(map)

    def fn(acts):
        out = acts[layer]
        if out.dim() == 2:
            return out[:, map]
        row = out.shape[-2] // 2 if y is None else y
        col = out.shape[-1] // 2 if x is None else x
        return out[:, map, row, col]

    where = "" if y is None and x is None else f"@{'c' if y is None else y},{'c' if x is None else x}"
    return Objective(fn, [layer], f"{layer}:{map}{where}", [Target(layer, map, y, x)], kind="node")


def layer(layer: str) -> Objective:
    """Mean over all maps (all units) of a layer."""
    name = layer
    return Objective(lambda acts: acts[name].flatten(1).mean(dim=1), [name], name, [Target(name)], kind="layer")


def logit(k: int) -> Objective:
    """Logit `k` (before the softmax) of the model's last layer."""
    return node(LOGITS, k)


def weighted(parts: Sequence[tuple[Objective, float]]) -> Objective:
    """Sum of weight * objective over `parts`."""
    if not parts:
        raise UserError("a weighted objective needs at least one part")
    total = None
    for objective, weight in parts:
        term = objective * float(weight)
        total = term if total is None else total + term
    return total


def per_element(objectives: Sequence[Objective]) -> Objective:
    """Batch element i is scored by objectives[i] (N images chase N targets in one pass)."""
    objectives = list(objectives)
    if not objectives:
        raise UserError("per_element needs at least one objective")
    layers = [name for obj in objectives for name in obj.layers]
    targets = [t for obj in objectives for t in obj.targets]
    maps = _same_layer_channels(objectives)

    if maps is not None:  # fast path: one gather for "map i of layer L" objectives
        layer_name, indices = maps
        index_tensor = torch.tensor(indices)

        def fn(acts):
            out = acts[layer_name]
            if out.shape[0] != len(indices):
                raise ValueError(f"per_element has {len(indices)} objectives but the batch has {out.shape[0]} images")
            rows = torch.arange(out.shape[0], device=out.device)
            return map_means(out[rows, index_tensor.to(out.device)])
    else:
        def fn(acts):
            n = next(iter(acts.values())).shape[0]
            if n != len(objectives):
                raise ValueError(f"per_element has {len(objectives)} objectives but the batch has {n} images")
            return torch.cat([obj({k: v[i:i + 1] for k, v in acts.items()}) for i, obj in enumerate(objectives)])

    def select(index):
        return per_element([objectives[int(i)] for i in index])

    names = [o.name for o in objectives]
    label = f"per_element[{', '.join(names[:3])}{', ...' if len(names) > 3 else ''}] ({len(names)})"
    result = Objective(fn, layers, label, targets, select, kind="per_element",
                       picks=(layer_name, index_tensor) if maps is not None else None)
    result.parts = tuple(objectives)  # type: ignore[attr-defined]
    return result


def _same_layer_channels(objectives: Sequence[Objective]) -> tuple[str, list[int]] | None:
    """(layer, maps) if every objective is a plain `channel(layer, map)` of one layer."""
    layer_names, maps = set(), []
    for obj in objectives:
        if obj.kind != "channel":
            return None
        target = obj.targets[0]
        layer_names.add(target.layer)
        maps.append(target.map)
    return (layer_names.pop(), maps) if len(layer_names) == 1 else None


# ---- running and checking ------------------------------------------------------------------
def resolve_layer(name: str, model) -> str:
    """The model's own name for `name` (`LOGITS` -> the last layer)."""
    return model.layer_names[-1] if name == LOGITS else name


def capture(model, x: torch.Tensor, objective: Objective, normalize: bool = False) -> dict[str, torch.Tensor]:
    """The activations `objective` needs, in one pass (keyed by the objective's own names).

    `normalize=False` (default) treats `x` as already in the network's standardised input
    space, as the OIP/dream ascent does; `True` takes raw [0, 1] images.
    """
    real = {name: resolve_layer(name, model) for name in objective.layers}
    acts = model.activations(x, list(dict.fromkeys(real.values())), normalize=normalize)
    return {name: acts[real_name] for name, real_name in real.items()}


def objective_values(objective: Objective, model, x: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """Objective values (N,) for a batch, without gradients."""
    with torch.no_grad():
        return objective(capture(model, x, objective, normalize=normalize))


def validate(objective: Objective, model) -> None:
    """UserError if a layer is unknown or a map/unit/pixel is out of range for `model`."""
    for name in objective.layers:
        model.check_layer(resolve_layer(name, model))
    for target in objective.targets:
        real = resolve_layer(target.layer, model)
        shape = model.output_shape(real)
        label = "logit" if target.layer == LOGITS else ("map" if len(shape) == 3 else "unit")
        if target.map is not None and not 0 <= target.map < shape[0]:
            raise UserError(f"{label} {target.map} out of range for layer {real}: valid {label}s are 0..{shape[0] - 1}")
        if target.y is None and target.x is None:
            continue
        if len(shape) != 3:
            raise UserError(f"layer {real} is dense: a node is a unit 0..{shape[0] - 1}, without y, x")
        for axis, value, size in (("y", target.y, shape[1]), ("x", target.x, shape[2])):
            if value is not None and not 0 <= value < size:
                raise UserError(f"node {axis}={value} out of range for layer {real} ({shape[1]}x{shape[2]} "
                                f"for {model.spec.image_size}x{model.spec.image_size} input): valid {axis} is 0..{size - 1}")


# ---- parsing user text ---------------------------------------------------------------------


