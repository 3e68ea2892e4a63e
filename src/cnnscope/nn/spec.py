"""The network's spec: named layers (the articles' list form), the input normalisation, and the
checks that a layout fits its input before anything is built.

Every spec is bounded when it is made (`ModelSpec.__post_init__`), whatever its source (a
layout, a checkpoint's config.json, a Keras or ONNX import): whole-number sizes within the
limits below, finite normalisation constants, and a parameter count and largest layer output
computed from the spec alone, so a hostile spec is refused before any tensor is allocated.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from cnnscope.errors import UserError, check_choice

# the stated limits of a spec (README "What is refused")
MAX_LAYERS = 64
MAX_IMAGE_SIZE = 1024  # input height and width
MAX_IN_CHANNELS = 4  # gray, RGB, RGBA
MAX_FILTERS = 4096  # per conv layer
MAX_UNITS = 65536  # per dense layer
MAX_KERNEL = 64  # conv kernel and pool height or width
MAX_PARAMETERS = 50_000_000  # weights and biases of the whole network (200 MB as float32)
MAX_LAYER_VALUES = 16_777_216  # values of one image's largest layer output (64 MB as float32)
MAX_NAME_LENGTH = 100

CONV_ACTIVATIONS = ("relu", "sigmoid", "elu", "tanh", "linear")


DENSE_ACTIVATIONS = ("relu", "sigmoid", "tanh", "softmax", "linear")


LAYER_KINDS = ("conv", "pool", "flatten", "dense", "dropout")


NORMALIZATIONS = ("none", "global", "per_image", "per_pixel")


# the choices of the articles' build_cnn_simple (article III), plus linear (no activation)
LAYOUT_CONV_ACTIVATIONS = ("relu", "sigmoid", "elu", "tanh", "linear")


LAYOUT_HIDDEN_ACTIVATIONS = ("relu", "sigmoid", "tanh", "linear")


LAYOUT_OUTPUT_ACTIVATIONS = ("softmax", "sigmoid", "linear")


DEFAULT_CONV = ((32, (3, 3), "relu"), (64, (3, 3), "relu"), (128, (3, 3), "relu"))


DEFAULT_DENSE = ((100, "relu"), (10, "softmax"))


@dataclass(frozen=True)
class LayerSpec:
    """One named layer. `size` is filters (conv) or units (dense); `kernel` is conv/pool size."""

    kind: str
    name: str
    size: int = 0
    kernel: tuple[int, int] = (0, 0)
    activation: str = "linear"
    padding: str = "valid"
    rate: float = 0.0  # dropout rate

    def __post_init__(self):
        check_choice("layer kind", self.kind, LAYER_KINDS)
        if not isinstance(self.name, str) or not 0 < len(self.name) <= MAX_NAME_LENGTH or "." in self.name:
            raise UserError(f"layer name must be 1 to {MAX_NAME_LENGTH} characters without '.', got {self.name!r}",
                            "layers")
        if not isinstance(self.kernel, Sequence) or len(self.kernel) != 2:
            raise UserError(f"kernel of {self.name} must be two whole numbers, got {self.kernel!r}", "layers")
        object.__setattr__(self, "kernel", tuple(_bounded(k, f"kernel of {self.name}", 0, MAX_KERNEL)
                                                 for k in self.kernel))
        if self.kind in ("conv", "dense"):
            limit, noun = (MAX_FILTERS, "filters") if self.kind == "conv" else (MAX_UNITS, "units")
            _bounded(self.size, f"{noun} of {self.name}", 1, limit)
        else:
            _bounded(self.size, f"size of {self.name}", 0, MAX_UNITS)
        if self.kind in ("conv", "pool"):
            for k in self.kernel:
                _bounded(k, f"kernel of {self.name}", 1, MAX_KERNEL)
        if self.kind == "dropout" and not (_is_number(self.rate) and 0 <= self.rate < 1):
            raise UserError(f"dropout rate of {self.name} must be a number in [0, 1), got {self.rate!r}", "layers")
        if self.kind == "conv":
            check_choice(f"activation of {self.name}", self.activation, CONV_ACTIVATIONS)
        if self.kind in ("conv", "pool"):
            check_choice(f"padding of {self.name}", self.padding, ("valid", "same"))
        if self.kind == "dense":
            check_choice(f"activation of {self.name}", self.activation, DENSE_ACTIVATIONS)


@dataclass(frozen=True)
class Normalization:
    """How raw [0, 1] images are standardised inside the model.

    `global`: (x - mean) / std with the training split's mean and std;
    `per_image`: each image to mean 0, std 1 (TensorFlow's per_image_standardization);
    `per_pixel`: every pixel by its own mean and std over the training split (scikit-learn's
    StandardScaler, as the articles did); the 784 means and stds are tensors of the model
    (buffers of its `Normalize` module, saved in model.safetensors), not part of this spec;
    `none`: unchanged.
    """

    mode: str = "global"
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self):
        check_choice("normalisation", self.mode, NORMALIZATIONS)
        for name in ("mean", "std"):
            if not _is_number(getattr(self, name)) or not math.isfinite(getattr(self, name)):
                raise UserError(f"normalisation {name} must be a finite number, got {getattr(self, name)!r}",
                                "normalize")
        if self.mode == "global" and not self.std > 0:
            raise UserError(f"normalisation std must be > 0, got {self.std}")


@dataclass(frozen=True)
class ModelSpec:
    layers: tuple[LayerSpec, ...]
    in_channels: int = 1
    image_size: int = 28
    normalization: Normalization = field(default_factory=Normalization)

    def __post_init__(self):
        if not isinstance(self.layers, tuple) or not all(isinstance(layer, LayerSpec) for layer in self.layers):
            raise UserError("the spec's layers must be a tuple of LayerSpec", "layers")
        if not 1 <= len(self.layers) <= MAX_LAYERS:
            raise UserError(f"a network has 1 to {MAX_LAYERS} layers, got {len(self.layers)}", "layers")
        _bounded(self.in_channels, "input channels", 1, MAX_IN_CHANNELS)
        _bounded(self.image_size, "image size", 1, MAX_IMAGE_SIZE)
        if not isinstance(self.normalization, Normalization):
            raise UserError("the spec's normalisation must be a Normalization", "normalize")
        parameters, largest = spec_size(self)
        if largest > MAX_LAYER_VALUES:
            raise UserError(f"a layer of the network would output {largest:,} values per image; the limit is "
                            f"{MAX_LAYER_VALUES:,}", "layers")
        if parameters > MAX_PARAMETERS:
            raise UserError(f"the network would have {parameters:,} parameters; the limit is {MAX_PARAMETERS:,}",
                            "layers")

    @classmethod
    def from_lists(
        cls,
        conv: Sequence[tuple[int, tuple[int, int] | int, str]] | None = None,
        pools: Sequence[tuple[int, int] | int] | None = None,
        dense: Sequence[tuple[int, str]] | None = None,
        normalization: Normalization | None = None,
        image_size: int = 28,
    ) -> ModelSpec:
        """The articles' way (article III's `li_Conv`, `li_Pool`, `li_MLP`): conv layers, pools
        between them, dense layers after a Flatten.

        Args:
            conv: (filters, kernel, activation) per conv layer; kernel an int or (h, w);
                activations relu, sigmoid, elu, tanh (or linear). None: the articles' three layers.
            pools: pool sizes (int or (h, w)); the i-th pool follows the i-th conv layer, so a
                list shorter than convs - 1 leaves the last conv layers without pools.
                None: a 2x2 pool after every conv layer but the last (the articles' rule).
            dense: (units, activation) per dense layer; hidden layers relu, sigmoid, tanh,
                the last one softmax or sigmoid (or linear). None: 100 relu, 10 softmax.
            normalization: the input standardisation (default: global).
            image_size: the input's height and width, for the size checks.

        Returns:
            The spec, with layers named Conv2D_n, Max_Pool_n, Flatten, Dense_n; a UserError
            naming the problem if the layout does not fit the input.
        """
        conv = DEFAULT_CONV if conv is None else conv
        dense = DEFAULT_DENSE if dense is None else dense
        pools = (((2, 2),) * max(len(conv) - 1, 0)) if pools is None else pools
        if not conv:
            raise UserError("the layout needs at least one conv layer", "conv")
        if not dense:
            raise UserError("the layout needs at least one dense layer (the class outputs)", "dense")
        if len(pools) > len(conv) - 1:
            raise UserError(f"{len(pools)} pools for {len(conv)} conv layers: at most {len(conv) - 1} "
                            "(a pool follows each conv layer but the last)", "pools")
        layers = _conv_layers(conv, pools, image_size)
        layers.append(LayerSpec("flatten", "Flatten"))
        for i, entry in enumerate(dense):
            units, act = entry
            name = f"Dense_{i + 1}"
            _check_count(units, name, "unit", "dense")
            choices = LAYOUT_OUTPUT_ACTIVATIONS if i == len(dense) - 1 else LAYOUT_HIDDEN_ACTIVATIONS
            where = "output layer" if i == len(dense) - 1 else "hidden layer"
            _check_activation(act, f"{name} ({where})", choices, "dense")
            layers.append(LayerSpec("dense", name, int(units), activation=act))
        return cls(tuple(layers), image_size=image_size, normalization=normalization or Normalization())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        """The spec of `to_dict`'s dict (a checkpoint's `spec`): every field's type and bound is
        checked (the schema of `nn.checkpoint_schema`) before anything is built; a UserError
        naming the first problem."""
        from cnnscope.nn.checkpoint_schema import checked_spec_dict

        data = checked_spec_dict(data)
        layers = tuple(LayerSpec(**{**layer, "kernel": tuple(layer["kernel"])}) for layer in data["layers"])
        return cls(layers=layers, in_channels=data["in_channels"], image_size=data["image_size"],
                   normalization=Normalization(**data["normalization"]))

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]


def spec_size(spec: ModelSpec) -> tuple[int, int]:
    """(parameter count, values of the largest layer output per image) of `spec`, computed from
    the spec alone (nothing is allocated); a UserError if the layers do not fit together."""
    channels, height, width = spec.in_channels, spec.image_size, spec.image_size
    parameters, largest, features = 0, channels * height * width, None
    names: set[str] = set()
    for layer in spec.layers:
        if layer.name in names or layer.name == "normalize":
            raise UserError(f"duplicate layer name {layer.name!r}", "layers")
        names.add(layer.name)
        if layer.kind == "conv":
            if features is not None:
                raise UserError(f"conv layer {layer.name!r} after Flatten is not supported", "layers")
            parameters += layer.size * (channels * layer.kernel[0] * layer.kernel[1] + 1)
            channels = layer.size
            if layer.padding == "valid":
                height, width = height - layer.kernel[0] + 1, width - layer.kernel[1] + 1
        elif layer.kind == "pool":
            if features is not None:
                raise UserError(f"pool layer {layer.name!r} after Flatten is not supported", "layers")
            if layer.padding == "same":
                height, width = -(-height // layer.kernel[0]), -(-width // layer.kernel[1])
            else:
                height, width = height // layer.kernel[0], width // layer.kernel[1]
        elif layer.kind == "flatten":
            features = channels * height * width
        elif layer.kind == "dense":
            if features is None:
                raise UserError(f"dense layer {layer.name!r} needs a Flatten layer before it", "layers")
            parameters += layer.size * (features + 1)
            features = layer.size
        if min(height, width) < 1:
            raise UserError(f"layer {layer.name!r} leaves no pixels for {spec.image_size}x{spec.image_size} input",
                            "layers")
        largest = max(largest, features if features is not None else channels * height * width)
    return parameters, largest


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _bounded(value, what: str, low: int, high: int) -> int:
    """`value` if it is a whole number (not a bool) in [low, high], else a UserError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise UserError(f"{what} must be a whole number from {low} to {high:,}, got {value!r}", "layers")
    return int(value)


def _pair(value, what: str, parameter: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise UserError(f"{what} must be a whole number or two (height, width), got {value!r}", parameter)
    if min(pair) < 1:
        raise UserError(f"{what} must be at least 1, got {value!r}", parameter)
    return int(pair[0]), int(pair[1])


def _check_count(value, name: str, noun: str, parameter: str) -> None:
    """`value` (filters or units of layer `name`) must be a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{noun}s of {name} must be a whole number, got {value!r}", parameter)
    if value < 1:
        raise UserError(f"{name} needs at least 1 {noun}, got {value}", parameter)


def _check_activation(name, where: str, choices: tuple[str, ...], parameter: str) -> None:
    if name not in choices:
        raise UserError(f"unknown activation {name!r} for {where}; allowed: {', '.join(choices)}", parameter)


def _conv_layers(conv, pools, image_size: int) -> list[LayerSpec]:
    """The conv and pool layers of a layout, checked against the map size they meet."""
    layers: list[LayerSpec] = []
    height = width = image_size
    for i, entry in enumerate(conv):
        filters, kernel, act = entry
        name = f"Conv2D_{i + 1}"
        _check_count(filters, name, "filter", "conv")
        kh, kw = _pair(kernel, f"kernel of {name}", "conv")
        _check_activation(act, name, LAYOUT_CONV_ACTIVATIONS, "conv")
        if kh > height or kw > width:
            raise UserError(f"the {kh}x{kw} kernel of {name} is larger than its {height}x{width} input", "conv")
        height, width = height - kh + 1, width - kw + 1
        layers.append(LayerSpec("conv", name, int(filters), (kh, kw), act))
        if i < len(pools):
            ph, pw = _pair(pools[i], f"pool {i + 1}", "pools")
            if ph > height or pw > width:
                raise UserError(f"Max_Pool_{i + 1} ({ph}x{pw}) on the {height}x{width} map of {name} "
                                "leaves no pixels", "pools")
            height, width = height // ph, width // pw
            layers.append(LayerSpec("pool", f"Max_Pool_{i + 1}", kernel=(ph, pw)))
    return layers


def default_spec(mean: float = 0.1307, std: float = 0.3081) -> ModelSpec:
    """The articles' network with global standardisation by the given mean and std."""
    return ModelSpec.from_lists(normalization=Normalization("global", mean, std))
