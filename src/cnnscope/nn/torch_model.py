"""Any PyTorch CNN in every view: `from_torch(module)` wraps an `nn.Module` in the model protocol.

The views (activations, layer grids, patterns, attribution, OIPs, dreams, the explorer) read a
model through a small set of names, which the library's own `CNN` defines and `TorchModel`
defines too:

    layer_names, layers_of_kind(*kinds), check_layer(name), layer_spec(name).kind,
    output_shape(name), is_spatial(name), num_classes, receptive_field(name),
    forward(x) (raw [0, 1] images -> the last layer's output), probabilities(x),
    output_probabilities(output), activations(x, layers, normalize=True),
    spec.image_size, spec.in_channels, spec.normalization, spec.layers, spec.to_dict()

A layer is named by its module path (`features.3`, `classifier.0`); a module that runs more than
once in one forward pass (one `nn.MaxPool2d` used after two convs) gives one layer per call,
`pool`, `pool~2`, ... Outputs are captured by forward hooks that exist only during a call, and
a pass stops at the deepest layer asked for. The user's module is never changed: no hooks are
left on it, no parameter or buffer is touched, and the shape trace restores every module's
train/eval flag. If the last chosen layer is not what the module returns, a layer `output`
(the module's return value, its class scores) is added at the end, since the views read class
scores from the last layer.

Every call runs the module in eval mode (each module's own train/eval flag is restored
afterwards): BatchNorm uses its running statistics and never updates them, Dropout passes its
input on, as at evaluation time.

A layer's output is what its module returns: with `F.relu` called in `forward`, a conv layer is
seen before its ReLU (name the ReLU modules, or use `nn.ReLU` modules, to see after it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.modules.utils import _pair

from cnnscope.errors import UserError
from cnnscope.nn.model import LayerStructure, Normalize
from cnnscope.nn.spec import Normalization
from cnnscope.runtime import device_of

TORCH_LAYER_KINDS = ("conv", "pool", "dense", "flatten", "dropout", "norm", "activation", "block")
DEFAULT_KINDS = ("conv", "pool", "dense")  # what `layers=None` picks
OUTPUT_LAYER = "output"
POOL_TYPES = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm,
              nn.LocalResponseNorm)
GEOMETRY_TYPES = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)  # modules whose kernel, stride and padding the receptive fields follow
DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)


def layer_kind(module: nn.Module) -> str:
    """The kind of a module: conv, pool, dense, flatten, dropout, norm, activation or block (anything else)."""
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, POOL_TYPES):
        return "pool"
    if isinstance(module, nn.Linear):
        return "dense"
    if isinstance(module, nn.Flatten):
        return "flatten"
    if isinstance(module, DROPOUT_TYPES):
        return "dropout"
    if isinstance(module, NORM_TYPES):
        return "norm"
    if type(module).__module__ == "torch.nn.modules.activation":
        return "activation"
    return "block"


def describe_module(module: nn.Module) -> str:
    """"Conv2d 3x3", "MaxPool2d 2x2", "Linear", "BatchNorm2d", ... (for layer titles)."""
    kernel = getattr(module, "kernel_size", None)
    if kernel is None:
        return type(module).__name__
    height, width = _pair(kernel)
    return f"{type(module).__name__} {height}x{width}"


@dataclass(frozen=True)
class TorchLayer:
    """One layer of a wrapped module: its name (module path, `~k` for call k > 1), kind and description."""

    name: str
    kind: str
    description: str


@dataclass(frozen=True)
class TorchSpec:
    """What the views read from `model.spec`: input size and channels, normalisation, layers."""

    in_channels: int
    image_size: int
    normalization: Normalization
    layers: tuple[TorchLayer, ...]
    module_type: str

    def to_dict(self) -> dict:
        return {"module_type": self.module_type, "in_channels": self.in_channels, "image_size": self.image_size,
                "normalization": asdict(self.normalization), "layers": [asdict(layer) for layer in self.layers]}


@dataclass
class _Call:
    """One module call seen by the shape trace."""

    name: str
    path: str
    module: nn.Module
    input_shape: tuple[int, ...] | None
    output: torch.Tensor | None


class _StopForward(BaseException):
    """Raised by the deepest hook to end a forward pass early (a BaseException: user code that
    catches Exception cannot swallow it)."""


def from_torch(module: nn.Module, input_size: Sequence[int] = (1, 28, 28), layers: Iterable[str] | None = None,
               normalize: Normalization | None = None) -> TorchModel:
    """Wrap a PyTorch CNN so that every cnnscope view works on it, its layers named by module path.

    Args:
        module: any `nn.Module` taking N x C x H x W images and returning N x classes scores
            (logits, or log-probabilities; a final `nn.Softmax` module's probabilities are used
            as they are). It is never changed.
        input_size: (C, H, W) of one image; cnnscope's images are square (H == W).
        layers: module paths to show, in any order (they are kept in forward order); default:
            every `nn.Conv2d`, pooling and `nn.Linear` module, in the order the forward pass runs them.
        normalize: how raw [0, 1] images become the module's input, e.g.
            `Normalization("global", 0.1307, 0.3081)` for torchvision's `Normalize((0.1307,), (0.3081,))`;
            None if the module takes [0, 1] images (or normalises them itself).

    Returns:
        A `TorchModel` (an `nn.Module` holding `module`) with the model protocol of `CNN`.

    Example:
        >>> model = cnnscope.from_torch(net, input_size=(1, 28, 28))
        >>> model.layer_names
        ['conv1', 'pool', 'conv2', 'pool~2', 'fc1', 'fc2']
    """
    return TorchModel(module, input_size, layers, normalize)


class TorchModel(LayerStructure, nn.Module):
    """A user's `nn.Module` behind the model protocol (see the module docstring); make it with `from_torch`."""

    LAYER_KINDS = TORCH_LAYER_KINDS

    def __init__(self, module: nn.Module, input_size: Sequence[int] = (1, 28, 28),
                 layers: Iterable[str] | None = None, normalize: Normalization | None = None):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise UserError(f"from_torch needs a torch.nn.Module, got {type(module).__name__}", "module")
        channels, size = _check_input_size(input_size)
        normalization = _check_normalization(normalize)
        self.module = module
        self.normalize = Normalize(normalization, (channels, size, size))
        calls, output = _trace(module, self.normalize, (channels, size, size))
        chosen = _choose_layers(calls, layers)
        names = [call.name for call in chosen]
        self._shapes = {call.name: tuple(call.output.shape[1:]) for call in chosen}
        self._calls = {call.name: (call.path, _call_number(call.name)) for call in chosen}
        described = [TorchLayer(call.name, layer_kind(call.module), describe_module(call.module)) for call in chosen]
        if not chosen or chosen[-1].output is not output:
            name = OUTPUT_LAYER if OUTPUT_LAYER not in {c.name for c in calls} else "module_output"
            names.append(name)
            self._shapes[name] = tuple(output.shape[1:])
            described.append(TorchLayer(name, "dense", "the module's output"))
        if len(output.shape) != 2:
            raise UserError(f"the module must return N x classes scores; for input {tuple(input_size)} it returned "
                            f"shape {tuple(output.shape)}", "module")
        self._fields = _receptive_fields(calls, names, self._shapes, size)
        self._softmax_output = isinstance(calls[-1].module, nn.Softmax) and calls[-1].output is output
        self.spec = TorchSpec(channels, size, normalization, tuple(described), type(module).__name__)

    # ---- structure: LayerStructure (layer_names, layers_of_kind, check_layer, output_shape, ...)
    def receptive_field(self, name: str) -> tuple[float, float]:
        """(offset, jump): pixel i of spatial layer `name` is centred on input pixel offset + jump * i.

        Exact for a chain of conv and pooling modules; where the trace cannot account for a
        layer's size (functional pooling, branches), the layer's grid is stretched over the
        input with the centres aligned.
        """
        if not self.is_spatial(name):
            raise UserError(f"layer {name!r} is not spatial: it has no receptive field", "layer")
        return self._fields[name]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def summary(self) -> str:
        """One line per layer: name, kind and module, output shape."""
        rows = [(layer.name, f"{layer.kind} ({layer.description})", str(self.output_shape(layer.name)))
                for layer in self.spec.layers]
        widths = [max(len(row[i]) for row in rows) + 3 for i in range(2)]
        lines = [f"{a.ljust(widths[0])}{b.ljust(widths[1])}{c}" for a, b, c in rows]
        norm = self.spec.normalization
        return "\n".join([*lines, f"{self.spec.module_type}: {self.parameter_count():,} parameters; input "
                          f"{self.spec.in_channels}x{self.spec.image_size}x{self.spec.image_size} raw pixels in "
                          f"[0, 1]; normalisation: {norm.mode}"])

    # ---- running ---------------------------------------------------------------------
    def train(self, mode: bool = True) -> TorchModel:
        """Set the wrapper's own flag only: the user's module keeps its flags (every call runs it in eval mode)."""
        self.training = bool(mode)
        self.normalize.train(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw images in [0, 1] -> the module's output (class scores), in eval mode."""
        with _eval_mode(self.module):
            return self.module(self.normalize(x))

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_probabilities(self(x))

    def output_probabilities(self, output: torch.Tensor) -> torch.Tensor:
        """Class probabilities from the module's output: its softmax (a final `nn.Softmax`'s output as it is)."""
        return output if self._softmax_output else torch.softmax(output, dim=-1)

    def activations(self, x: torch.Tensor, layers: Iterable[str], normalize: bool = True) -> dict[str, torch.Tensor]:
        """Outputs of the named layers in one pass, stopping at the deepest one asked for.

        `normalize=False` takes `x` as already normalised (the OIPs' and dreams' input space).
        """
        wanted = list(dict.fromkeys(self.check_layer(name) for name in layers))
        if not wanted:
            return {}
        order = self.layer_names
        deepest = max(wanted, key=order.index)
        captured: dict[str, torch.Tensor] = {}
        handles = []
        try:
            for path, names in self._hooked_paths(wanted).items():
                handles.append(self.module.get_submodule(path).register_forward_hook(
                    _capture_hook(names, captured, deepest)))
            h = self.normalize(x) if normalize else x
            try:
                with _eval_mode(self.module):
                    output = self.module(h)
            except _StopForward:
                output = None
        finally:
            for handle in handles:
                handle.remove()
        if output is not None and self.layer_names[-1] in wanted and self.layer_names[-1] not in self._calls:
            captured[self.layer_names[-1]] = output
        return {name: captured[name] for name in wanted}

    def _hooked_paths(self, wanted: list[str]) -> dict[str, dict[int, str]]:
        """module path -> {call number: layer name} for the wanted layers that are module calls."""
        paths: dict[str, dict[int, str]] = {}
        for name in wanted:
            if name in self._calls:
                path, number = self._calls[name]
                paths.setdefault(path, {})[number] = name
        return paths


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """`module` in eval mode for the duration, every submodule's own flag restored afterwards."""
    modes = [(m, m.training) for m in module.modules() if m.training]
    if not modes:  # nothing to switch (no flag is touched: safe for threads sharing an eval-mode module)
        yield
        return
    module.train(False)
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _capture_hook(names: dict[int, str], captured: dict[str, torch.Tensor], deepest: str):
    """A forward hook that keeps the outputs of the numbered calls; it only sees calls of the thread
    that made it (the explorer runs drawing updates and the test-set pass on one model at once)."""
    calls = [0]
    owner = threading.get_ident()

    def hook(module, inputs, output):
        if threading.get_ident() != owner:
            return
        calls[0] += 1
        name = names.get(calls[0])
        if name is not None:
            captured[name] = output
            if name == deepest:
                raise _StopForward

    return hook


def _call_number(name: str) -> int:
    return int(name.rsplit("~", 1)[1]) if "~" in name else 1


def _check_input_size(input_size: Sequence[int]) -> tuple[int, int]:
    try:
        values = [int(v) for v in input_size]
        whole = all(int(v) == v for v in input_size)
    except (TypeError, ValueError):
        values, whole = [], False
    if len(values) != 3 or not whole or min(values) < 1:
        raise UserError(f"input_size must be (channels, height, width) whole numbers >= 1, got {input_size!r}",
                        "input_size")
    channels, height, width = values
    if height != width:
        raise UserError(f"cnnscope's views need square images: input_size height {height} != width {width}",
                        "input_size")
    return channels, height


def _check_normalization(normalize) -> Normalization:
    if normalize is None:
        return Normalization("none")
    if not isinstance(normalize, Normalization):
        raise UserError(f"normalize must be a cnnscope.Normalization or None, got {type(normalize).__name__}",
                        "normalize")
    if normalize.mode == "per_pixel":
        raise UserError("normalize per_pixel needs pixel statistics; from_torch takes global, per_image or none",
                        "normalize")
    return normalize


def _trace(module: nn.Module, normalize: nn.Module, input_shape: tuple[int, int, int]) -> tuple[list[_Call], torch.Tensor]:
    """Every module call of one eval-mode forward pass on a zero image, in order, and the output.

    Hooks are removed and every module's train/eval flag restored afterwards.
    """
    calls: list[_Call] = []
    counts: dict[int, int] = {}
    handles = []

    def recorder(path: str):
        def hook(m, inputs, output):
            counts[id(m)] = counts.get(id(m), 0) + 1
            name = path if counts[id(m)] == 1 else f"{path}~{counts[id(m)]}"
            first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
            calls.append(_Call(name, path, m, None if first is None else tuple(first.shape),
                               output if isinstance(output, torch.Tensor) else None))
        return hook

    try:
        for path, sub in module.named_modules():
            if path:
                handles.append(sub.register_forward_hook(recorder(path)))
        x = torch.zeros((1, *input_shape), device=device_of(module))
        with torch.no_grad(), _eval_mode(module):
            try:
                output = module(normalize.to(x.device)(x))
            except Exception as exc:  # any failure of the user's forward pass on this size
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise UserError(f"input size {tuple(input_shape)} does not fit the module: {type(exc).__name__}: "
                                f"{first_line}", "input_size") from None
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(output, torch.Tensor):
        raise UserError(f"the module must return one tensor of class scores, it returned {type(output).__name__}",
                        "module")
    return calls, output


def _choose_layers(calls: list[_Call], layers: Iterable[str] | None) -> list[_Call]:
    """The chosen calls in forward order: the named ones, or by default every conv, pool and linear call."""
    usable = [call for call in calls if call.output is not None and call.output.dim() >= 2]
    if layers is None:
        chosen = [call for call in usable if layer_kind(call.module) in DEFAULT_KINDS]
        if not chosen:
            raise UserError("the module has no usable layers: no nn.Conv2d, pooling or nn.Linear module runs in its "
                            "forward pass; name its modules with layers=[...]", "layers")
        return chosen
    if isinstance(layers, str):
        layers = [layers]
    names = list(dict.fromkeys(layers))
    by_name = {call.name: call for call in usable}
    for name in names:
        if name not in by_name:
            raise UserError(f"unknown layer {name!r}; valid layers: {', '.join(by_name) or '(none)'}", "layers")
    if not names:
        raise UserError("layers is empty; name at least one module or pass layers=None", "layers")
    wanted = set(names)
    return [call for call in usable if call.name in wanted]


def _receptive_fields(calls: list[_Call], names: list[str], shapes: dict[str, tuple[int, ...]],
                      size: int) -> dict[str, tuple[float, float]]:
    """(offset, jump) of every spatial layer, following the conv and pooling calls before it (see
    `TorchModel.receptive_field`)."""
    fields: dict[str, tuple[float, float]] = {}
    offset, jump, height = 0.0, 1.0, size
    for call in calls:
        if call.output is not None and call.output.dim() == 4 and isinstance(call.module, GEOMETRY_TYPES):
            offset, jump, height = _through(call.module, offset, jump, height)
        if call.name in names and len(shapes[call.name]) == 3:
            h, w = shapes[call.name][1:]
            if h == w and height == h:
                fields[call.name] = (offset, jump)
            else:  # the chain does not explain this size: stretch, centres aligned
                stretch = size / h
                fields[call.name] = ((stretch - 1) / 2, stretch)
    return fields


def _through(module: nn.Module, offset: float, jump: float, height: int) -> tuple[float, float, int]:
    """(offset, jump, output height) after a conv or pooling module (its height axis)."""
    k = _pair(module.kernel_size)[0]
    s = _pair(module.stride)[0] if module.stride is not None else k
    d = _pair(getattr(module, "dilation", 1))[0]
    padding = module.padding
    if isinstance(padding, str):  # "valid" or "same" (PyTorch puts the odd extra pixel at the end)
        before, total = (0, 0) if padding == "valid" else (d * (k - 1) // 2, d * (k - 1))
    else:
        before = _pair(padding)[0]
        total = 2 * before
    reach = height + total - d * (k - 1) - 1
    out = -(-reach // s) + 1 if getattr(module, "ceil_mode", False) else reach // s + 1
    return offset + ((k - 1) * d / 2 - before) * jump, jump * s, out
