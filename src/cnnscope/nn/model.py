"""The seed CNN: the spec of `nn.spec` built into a plain `nn.Module`, and its batched forward pass.

The network takes raw images in [0, 1] (shape N x C x H x W); its first module applies
the input normalisation stored with the model. The last dense layer returns logits;
`probabilities()` applies the softmax that the articles' Keras model had in its last layer.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnscope.errors import UserError, check_choice
from cnnscope.nn.spec import (
    DENSE_ACTIVATIONS,
    LAYER_KINDS,
    LayerSpec,
    ModelSpec,
    Normalization,
    default_spec,
)

T = TypeVar("T")


def apply_activation(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "relu":
        return F.relu(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "elu":
        return F.elu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name in ("linear", "softmax"):  # softmax is applied by probabilities(); layers emit logits
        return x
    raise UserError(f"unknown activation {name!r}; allowed: {', '.join(DENSE_ACTIVATIONS + ('elu',))}")


class Normalize(nn.Module):
    """The model's input standardisation; `per_pixel` holds the pixel means and stds as buffers
    `pixel_mean` and `pixel_std` (C x H x W, saved with the weights)."""

    def __init__(self, normalization: Normalization, image_shape: tuple[int, int, int] = (1, 28, 28)):
        super().__init__()
        self.mode = normalization.mode
        self.mean = float(normalization.mean)
        self.std = float(normalization.std)
        if self.mode == "per_pixel":
            self.register_buffer("pixel_mean", torch.zeros(image_shape))
            self.register_buffer("pixel_std", torch.ones(image_shape))

    def set_pixel_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the per-pixel means and stds (each C x H x W, on the [0, 1] pixel scale)."""
        if self.mode != "per_pixel":
            raise UserError(f"pixel statistics need the per_pixel normalisation, this model's is {self.mode}")
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        shape = tuple(self.pixel_mean.shape)
        if tuple(mean.shape) != shape or tuple(std.shape) != shape:
            raise UserError(f"pixel statistics must have the input's shape {shape}, got {tuple(mean.shape)} "
                            f"and {tuple(std.shape)}")
        if not bool(torch.isfinite(mean).all()) or not bool((std > 0).all()):
            raise UserError("pixel statistics need finite means and stds > 0")
        with torch.no_grad():
            self.pixel_mean.copy_(mean)
            self.pixel_std.copy_(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "global":
            return (x - self.mean) / self.std
        if self.mode == "per_image":
            return per_image_standardize(x)
        if self.mode == "per_pixel":
            return (x - self.pixel_mean) / self.pixel_std
        return x

    def extra_repr(self) -> str:
        if self.mode == "per_pixel":
            return f"mode=per_pixel, {self.pixel_mean.numel()} pixel means and stds"
        return f"mode={self.mode}, mean={self.mean:.4f}, std={self.std:.4f}"


def standard_scaler_statistics(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and scales exactly as scikit-learn's `StandardScaler().fit(values)` gives
    `mean_` and `scale_`: float64, population std (ddof 0), and scale 1 for columns whose
    variance is indistinguishable from zero (scikit-learn's `_is_constant_feature` bound).

    Args:
        values: N x F samples.

    Returns:
        (mean, scale), each of F float64 values.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    mean = values.sum(axis=0) / n
    centred = values - mean
    var = ((centred**2).sum(axis=0) - centred.sum(axis=0) ** 2 / n) / n  # scikit-learn's corrected two-pass
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    return mean, scale


def per_pixel_statistics(images: np.ndarray, fitted_on: str = "unit") -> tuple[torch.Tensor, torch.Tensor]:
    """StandardScaler's per-pixel means and stds of uint8 images, on the model's [0, 1] scale.

    Args:
        images: N x H x W (or N x C x H x W) uint8 pixels 0..255.
        fitted_on: "unit" (the scaler saw pixels / 255, as cnnscope trains) or "raw" (it saw the
            0..255 values, as the articles' `StandardScaler().fit_transform(X)` did: means and
            stds are divided by 255 afterwards, so a constant pixel's scale is 1/255).

    Returns:
        (mean, std) tensors of shape C x H x W (float32) for `Normalize.set_pixel_statistics`.
    """
    check_choice("scaler input", fitted_on, ("unit", "raw"))
    images = np.asarray(images)
    shape = images.shape[1:] if images.ndim == 4 else (1, *images.shape[1:])
    flat = images.reshape(images.shape[0], -1).astype(np.float64)
    if fitted_on == "unit":
        mean, scale = standard_scaler_statistics(flat / 255.0)
    else:
        mean, scale = (v / 255.0 for v in standard_scaler_statistics(flat))
    return (torch.from_numpy(mean.reshape(shape)).float(), torch.from_numpy(scale.reshape(shape)).float())


def per_image_standardize(x: torch.Tensor) -> torch.Tensor:
    """(x - mean) / max(std, 1/sqrt(N)) per image, as TensorFlow's per_image_standardization."""
    flat = x.reshape(x.shape[0], -1)
    n = flat.shape[1]
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, unbiased=False, keepdim=True).clamp_min(1.0 / n**0.5)
    return ((flat - mean) / std).reshape(x.shape)


class SameMaxPool2d(nn.MaxPool2d):
    """Max pooling with Keras's `padding="same"`: output ceil(size / pool), padded cells never win."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size, pool in ((x.shape[-1], self.kernel_size[1]), (x.shape[-2], self.kernel_size[0])):
            total = -(-size // pool) * pool - size
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads, value=float("-inf")))


class Conv2DLayer(nn.Conv2d):
    def __init__(self, in_channels: int, spec: LayerSpec):
        super().__init__(in_channels, spec.size, spec.kernel, padding=spec.padding)
        self.activation = spec.activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_activation(self.activation, super().forward(x))


class DenseLayer(nn.Linear):
    def __init__(self, in_features: int, spec: LayerSpec):
        super().__init__(in_features, spec.size)
        self.activation = spec.activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_activation(self.activation, super().forward(x))


class LayerStructure:
    """The named layers of a model and their output shapes: what every view asks a model.

    Shared by `CNN` and `nn.torch_model.TorchModel`; a user needs `self._shapes` (layer name ->
    one image's output shape, in forward order), `self.spec.layers` (objects with `name` and
    `kind`) and the class attribute `LAYER_KINDS` (the kinds `layers_of_kind` accepts).
    """

    LAYER_KINDS: tuple[str, ...] = LAYER_KINDS

    @property
    def layer_names(self) -> list[str]:
        return list(self._shapes)

    def layer_spec(self, name: str):
        self.check_layer(name)
        return self.spec.layers[self.layer_names.index(name)]

    def layers_of_kind(self, *kinds: str) -> list[str]:
        """Names of the layers of the given kinds (e.g. "conv", "pool", "dense"), in forward order."""
        for kind in kinds:
            check_choice("layer kind", kind, self.LAYER_KINDS)
        return [layer.name for layer in self.spec.layers if layer.kind in kinds]

    def check_layer(self, name: str) -> str:
        if name not in self._shapes:
            raise UserError(f"unknown layer {name!r}; valid layers: {', '.join(self.layer_names)}")
        return name

    def output_shape(self, name: str) -> tuple[int, ...]:
        """Shape of one image's output at layer `name` (C, H, W) or (units,)."""
        return self._shapes[self.check_layer(name)]

    def is_spatial(self, name: str) -> bool:
        return len(self.output_shape(name)) == 3

    @property
    def num_classes(self) -> int:
        return self.output_shape(self.layer_names[-1])[0]


class CNN(LayerStructure, nn.Module):
    """A sequential CNN whose layers carry the spec's names (`model.body.Conv2D_1`)."""

    def __init__(self, spec: ModelSpec | None = None):
        super().__init__()
        self.spec = spec or default_spec()
        self.normalize = Normalize(self.spec.normalization,
                                   (self.spec.in_channels, self.spec.image_size, self.spec.image_size))
        self.body = nn.Sequential()
        self._shapes: dict[str, tuple[int, ...]] = {}
        channels, height, width = self.spec.in_channels, self.spec.image_size, self.spec.image_size
        features = None
        for layer in self.spec.layers:
            if layer.name in self._shapes or layer.name in ("normalize",):
                raise UserError(f"duplicate layer name {layer.name!r}")
            if layer.kind == "conv":
                if features is not None:
                    raise UserError(f"conv layer {layer.name!r} after Flatten is not supported")
                module = Conv2DLayer(channels, layer)
                channels = layer.size
                if layer.padding == "valid":
                    height, width = height - layer.kernel[0] + 1, width - layer.kernel[1] + 1
            elif layer.kind == "pool":
                if layer.padding == "same":
                    module = SameMaxPool2d(layer.kernel)
                    height, width = -(-height // layer.kernel[0]), -(-width // layer.kernel[1])
                else:
                    module = nn.MaxPool2d(layer.kernel)
                    height, width = height // layer.kernel[0], width // layer.kernel[1]
            elif layer.kind == "flatten":
                module = nn.Flatten()
                features = channels * height * width
            elif layer.kind == "dropout":
                module = nn.Dropout(layer.rate)
            else:  # dense
                if features is None:
                    raise UserError(f"dense layer {layer.name!r} needs a Flatten layer before it")
                module = DenseLayer(features, layer)
                features = layer.size
            if min(height, width) < 1:
                raise UserError(f"layer {layer.name!r} leaves no pixels for {self.spec.image_size}x{self.spec.image_size} input")
            self.body.add_module(layer.name, module)
            self._shapes[layer.name] = (features,) if features is not None else (channels, height, width)

    def receptive_field(self, name: str) -> tuple[float, float]:
        """(offset, jump): pixel i of layer `name` is centred on input pixel offset + jump * i."""
        self.check_layer(name)
        offset, jump, size = 0.0, 1.0, self.spec.image_size
        for spec in self.spec.layers:
            k = spec.kernel[0]
            if spec.kind == "conv":
                before = 0 if spec.padding == "valid" else (k - 1) // 2  # PyTorch 'same': extra pad at the end
                offset += ((k - 1) / 2 - before) * jump
                size = size - k + 1 if spec.padding == "valid" else size
            elif spec.kind == "pool":
                before = (-(-size // k) * k - size) // 2 if spec.padding == "same" else 0
                offset += ((k - 1) / 2 - before) * jump
                jump *= k
                size = -(-size // k) if spec.padding == "same" else size // k
            if spec.name == name:
                break
        return offset, jump

    # ---- running ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw images in [0, 1] -> logits of the last layer."""
        return self.body(self.normalize(x))

    def fused_forward(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` computed by `run_layers` (pooling before ReLU), equal bit for bit but without
        the layers' module hooks: the training loop's forward pass."""
        return self.run_layers(self.normalize(x), len(self.body))[0]

    def run_layers(self, h: torch.Tensor, stop: int, wanted: Collection[str] = (),
                   pre_activation: Callable[[nn.Module, torch.Tensor, int], torch.Tensor | None] | None = None,
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The body's first `stop` layers on `h`: (the last output, the outputs named in `wanted`).

        A ReLU conv layer followed by plain max pooling, when its own output is not wanted, is
        computed as pooling then ReLU: ReLU is non-decreasing, so max(relu(a)) = relu(max(a)) and
        the gradient reaches the same pixels, values and gradients bit for bit, while the ReLU and
        its backward pass touch a quarter of the values (a training step 10% faster). The layers
        are called directly, so module hooks do not fire.
        `pre_activation(module, h, index)` may compute a conv layer's output before its activation
        (None: the layer's own convolution; `optvis.networks` passes its own).
        """
        children = list(self.body.named_children())
        out: dict[str, torch.Tensor] = {}
        i = 0
        while i < stop:
            name, module = children[i]
            linear = None
            if isinstance(module, Conv2DLayer):
                linear = pre_activation(module, h, i) if pre_activation else None
                linear = module._conv_forward(h, module.weight, module.bias) if linear is None else linear
            if (linear is not None and module.activation == "relu" and name not in wanted and i + 1 < stop
                    and isinstance(children[i + 1][1], nn.MaxPool2d)):
                pool_name, pool = children[i + 1]
                h = out[pool_name] = torch.relu(pool(linear))
                i += 2
                continue
            h = out[name] = module(h) if linear is None else apply_activation(module.activation, linear)
            i += 1
        return h, {name: value for name, value in out.items() if name in wanted}

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax of the last layer's logits; a sigmoid last layer's outputs are used as they are."""
        return self.output_probabilities(self(x))

    def output_probabilities(self, output: torch.Tensor) -> torch.Tensor:
        """Class probabilities from an already computed last-layer output (classes in the last dim)."""
        if self.spec.layers[-1].activation == "sigmoid":
            return output
        return torch.softmax(output, dim=-1)

    def prefix(self, name: str, normalize: bool = True) -> nn.Sequential:
        """The network up to and including layer `name` (conv prefixes accept any image size).

        With `normalize=False` the prefix starts after the input normalisation, for work in
        the network's own (standardised) input space, as the articles' OIPs do.
        """
        stop = self.layer_names.index(self.check_layer(name)) + 1
        modules = list(self.body.named_children())[:stop]
        prefix = nn.Sequential()
        if normalize:
            prefix.add_module("normalize", self.normalize)
        for child_name, module in modules:
            prefix.add_module(child_name, module)
        return prefix

    def activations(
        self, x: torch.Tensor, layers: Iterable[str], normalize: bool = True
    ) -> dict[str, torch.Tensor]:
        """Outputs of the named layers in one pass, stopping at the deepest one asked for."""
        wanted = [self.check_layer(name) for name in layers]
        if not wanted:
            return {}
        deepest = max(self.layer_names.index(name) for name in wanted)
        out: dict[str, torch.Tensor] = {}
        h = self.normalize(x) if normalize else x
        for index, (name, module) in enumerate(self.body.named_children()):
            if index > deepest:
                break
            h = module(h)
            if name in wanted:
                out[name] = h
        return {name: out[name] for name in wanted}

    # ---- description -----------------------------------------------------------------
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def summary(self) -> str:
        """A Keras-like table: layer (type), output shape, parameters."""
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer, (name, module) in zip(self.spec.layers, self.body.named_children(), strict=True):
            shape = "(None, " + ", ".join(str(s) for s in _keras_order(self.output_shape(name))) + ")"
            params = sum(p.numel() for p in module.parameters())
            kind = {"conv": "Conv2D", "pool": "MaxPooling2D", "flatten": "Flatten", "dense": "Dense", "dropout": "Dropout"}[layer.kind]
            rows.append((f"{name} ({kind})", shape, f"{params:,}"))
        widths = [max(len(r[i]) for r in rows) + 3 for i in range(3)]
        line = "=" * sum(widths)
        text = [_fmt(rows[0], widths), line]
        text += [_fmt(r, widths) for r in rows[1:]]
        norm = self.spec.normalization
        text += [line, f"Total params: {self.parameter_count():,}"]
        detail = f" (mean {norm.mean:.4f}, std {norm.std:.4f})" if norm.mode == "global" else ""
        if norm.mode == "per_pixel":
            detail = f" (a mean and std for each of the {self.normalize.pixel_mean.numel()} pixels, stored with the weights)"
        text.append(f"Input: {self.spec.in_channels}x{self.spec.image_size}x{self.spec.image_size} raw pixels in [0, 1]; normalisation: {norm.mode}{detail}")
        return "\n".join(text)


def _keras_order(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape


def _fmt(row, widths) -> str:
    return "".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))


def activations(model: CNN, images: torch.Tensor, layers: Iterable[str] | str) -> dict[str, torch.Tensor]:
    """The named layers' outputs for a batch of raw images, in one forward pass (no grad)."""
    if isinstance(layers, str):
        layers = [layers]
    with torch.no_grad():
        return model.activations(images, layers)


def map_batches(model: nn.Module, images: torch.Tensor, compute: Callable[[torch.Tensor], T],
                batch_size: int = 500) -> list[T]:
    """`compute(batch)` for consecutive batches of `images`, each moved to the model's device,
    without gradients and with the model in eval mode (its mode is restored afterwards).

    The one batched forward pass of the library: evaluation, patterns, dataset maxima and the
    explorer's statistics all use it, so memory stays bounded by `batch_size` images.
    """
    from cnnscope.errors import check_whole
    from cnnscope.runtime import device_of

    check_whole("batch size", batch_size, minimum=1)
    device = device_of(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return [compute(images[start:start + batch_size].to(device))
                    for start in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was_training)
