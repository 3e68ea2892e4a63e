"""The network the gradient ascent runs on: a model's values and input gradients with less work.

`ascent_network(model, device)` returns what the OIP and dream loop calls at every step,
`network.values(x, objective)` (one value per image, with the graph for the input gradient),
and `network.activations(x, layers, normalize)` as a model has it. For a `CNN` that is a
`FastCNN`; any other model (`from_torch`) runs as its `inference_copy`. Either way the
caller's model is never changed.

`FastCNN` computes the same function as the CNN with four changes, each checked against the
plain model in tests/optvis/test_networks.py and measured in benchmarks/oip_speed.py:

1. **Pool before ReLU** (`CNN.run_layers`, which the training's forward pass also uses): a
   ReLU conv layer followed by max-pooling, when only the pool's output is read, is computed
   as pooling then ReLU, equal bit for bit.
2. **The first layer's input gradient as a matrix product.** For a first conv layer with one
   input channel, mkldnn's transposed convolution (the input gradient) ran at about 5 GFLOP/s
   (11 ms for a batch of 122 on one core); `FirstConv` computes it as one matrix product (k*k
   taps x channels times channels x pixels, 2 ms) and k*k shifted additions. The sums run in
   another order, so the gradient differs in the last bits (about 1e-7 relative).
3. **Only the maps an objective reads.** An objective with `picks` (a map objective, or the
   zoo's "map i for image i") gets only those maps computed in its layer: a gather of each
   output pixel's window and one product per image instead of the whole layer (for Conv2D_3
   of the default model 1/128 of the work). Values differ from the full layer in the last bits.
4. **The input cropped to what the read layer sees.** Valid convs and pools are anchored at the
   top left and a pool drops the rows that do not fill a window, so an objective on one layer
   gets only the pixels that layer depends on (26 x 26 of 28 x 28 for Conv2D_3); the others'
   gradient is zero either way.

Together: the articles' zoo of Conv2D_3 (128 maps x 600 steps) ran 2.1x faster than on the
plain network, 3.5x faster than a plain eager batched loop (one thread; benchmarks/README.md).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from cnnscope.nn.inference import inference_copy
from cnnscope.nn.model import CNN, Conv2DLayer, DenseLayer, apply_activation
from cnnscope.optvis.objectives import capture, map_means, resolve_layer


def ascent_network(model, device: torch.device):
    """The network the ascent loop runs on (see the module docstring): channels-last on the CPU
    (max-pooling about 10x and a whole ascent step about 1.7x faster, benchmarks/oip_speed.py)."""
    copy = inference_copy(model, channels_last=device.type == "cpu")
    return FastCNN(copy) if isinstance(model, CNN) else PlainNetwork(copy)


class PlainNetwork:
    """Any model with the `activations` interface, run as it is."""

    def __init__(self, model):
        self.model = model
        self.layer_names = model.layer_names

    def activations(self, x: torch.Tensor, layers, normalize: bool = False) -> dict[str, torch.Tensor]:
        return self.model.activations(x, layers, normalize=normalize)

    def values(self, x: torch.Tensor, objective) -> torch.Tensor:
        return objective(capture(self, x, objective))


class FastCNN(PlainNetwork):
    """A `CNN` (an inference copy) computed with the four changes of the module docstring."""

    def __init__(self, model: CNN):
        super().__init__(model)
        self.children = list(model.body.named_children())

    def activations(self, x: torch.Tensor, layers, normalize: bool = False) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        out = self._run(x, wanted, max(self.layer_names.index(name) for name in wanted) + 1, normalize)[1]
        return {name: out[name] for name in layers}

    def values(self, x: torch.Tensor, objective) -> torch.Tensor:
        layers = {resolve_layer(name, self) for name in objective.layers}
        if len(layers) == 1:
            x = self._cropped(x, self.layer_names.index(layers.pop()))
        position = None if objective.picks is None else self.layer_names.index(resolve_layer(objective.picks[0], self))
        if position is None or not isinstance(self.children[position][1], Conv2DLayer | DenseLayer):
            return objective(capture(self, x, objective))
        h, _ = self._run(x, set(), position, normalize=False)
        maps = objective.picks[1]
        return map_means(picked_maps(self.children[position][1], h, maps))

    def _cropped(self, x: torch.Tensor, position: int) -> torch.Tensor:
        """`x` without the bottom rows and right columns that layer `position` never sees: valid
        convs and pools are anchored at the top left, and a pool drops the rows that do not fill a
        window (the default model's Conv2D_3 reads 26 x 26 of the 28 x 28 input)."""
        height, width = x.shape[-2:]
        for _, module in self.children[:position + 1]:
            if isinstance(module, Conv2DLayer) and module.padding == "valid":
                height, width = height - module.kernel_size[0] + 1, width - module.kernel_size[1] + 1
            elif _plain_pool(module):
                size = _pair(module.kernel_size)
                height, width = height // size[0], width // size[1]
            elif isinstance(module, Conv2DLayer | nn.MaxPool2d | nn.Flatten | DenseLayer):
                return x  # a same-padded layer sees everything
        for _, module in reversed(self.children[:position + 1]):
            if isinstance(module, Conv2DLayer):
                height, width = height + module.kernel_size[0] - 1, width + module.kernel_size[1] - 1
            elif isinstance(module, nn.MaxPool2d):
                size = _pair(module.kernel_size)
                height, width = height * size[0], width * size[1]
        return x[..., :height, :width]

    def _run(self, x: torch.Tensor, wanted: set[str], stop: int, normalize: bool
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The body's first `stop` layers on `x`: (their last output, the outputs in `wanted`)."""
        h = self.model.normalize(x) if normalize else x
        return self.model.run_layers(h, stop, wanted, pre_activation=_first_conv)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _plain_pool(module: nn.Module) -> bool:
    """A max-pool whose windows tile its input from the top left (stride = kernel, no padding)."""
    return (type(module) is nn.MaxPool2d and _pair(module.kernel_size) == _pair(module.stride)
            and _pair(module.padding) == (0, 0) and _pair(module.dilation) == (1, 1) and not module.ceil_mode)


def _first_conv(module: Conv2DLayer, h: torch.Tensor, index: int) -> torch.Tensor | None:
    """The first layer's output before its activation through `FirstConv` when it has one input
    channel and the input needs a gradient on the CPU (None: the layer's own convolution)."""
    if index == 0 and module.in_channels == 1 and h.device.type == "cpu" and h.requires_grad:
        return FirstConv.apply(_same_pad(module, h), module.weight, module.bias)
    return None


def _same_pad(module: Conv2DLayer, h: torch.Tensor) -> torch.Tensor:
    """`h` padded as PyTorch's padding="same" pads (the extra pixel at the end); unchanged for "valid"."""
    if module.padding != "same":
        return h
    pads: list[int] = []
    for k in (module.kernel_size[1], module.kernel_size[0]):
        pads += [(k - 1) // 2, k - 1 - (k - 1) // 2]
    return F.pad(h, pads)


class FirstConv(torch.autograd.Function):
    """A valid convolution of a one-channel input whose input gradient is one matrix product and
    k*k shifted additions (no weight gradient: the ascent's parameters are frozen)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.input_shape = x.shape
        return F.conv2d(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (weight,) = ctx.saved_tensors
        n, _, height, width = ctx.input_shape
        channels, _, kh, kw = weight.shape
        oh, ow = grad.shape[-2:]
        per_pixel = grad.permute(0, 2, 3, 1).reshape(-1, channels)  # a view for a channels-last gradient
        # taps x pixels: 3x faster than pixels x taps, whose 9 columns hit a slow kernel
        taps = (weight.reshape(channels, kh * kw).t() @ per_pixel.t()).view(kh, kw, n, oh, ow)
        image = grad.new_zeros(n, height, width)
        for i in range(kh):
            for j in range(kw):
                image[:, i:i + oh, j:j + ow] += taps[i, j]
        return image.unsqueeze(1), None, None


PICK_LIMIT = 1 << 24  # gathered input values above which a layer is computed whole (64 MB of float32)


def picked_maps(module: nn.Module, h: torch.Tensor, maps: torch.Tensor | int) -> torch.Tensor:
    """Map `maps[i]` of layer `module` for image i of its input `h` (an int: the same map for every
    image): N x H x W for a conv layer, N for a dense one, after the layer's activation.

    A conv layer gathers each output pixel's window (N x pixels x k*k*channels) and multiplies
    it by the picked map's weights; when that gathering would exceed `PICK_LIMIT` values (large
    photos) the whole layer is computed and the maps read from it.
    """
    n = h.shape[0]
    maps = (torch.full((n,), maps, dtype=torch.long) if isinstance(maps, int) else maps).to(h.device)
    bias = module.bias[maps] if module.bias is not None else None
    if isinstance(module, DenseLayer):
        out = (h * module.weight[maps]).sum(dim=1)
        return apply_activation(module.activation, out if bias is None else out + bias)
    padded = _same_pad(module, h)
    (kh, kw), (height, width) = module.kernel_size, padded.shape[-2:]
    oh, ow = height - kh + 1, width - kw + 1
    if n * oh * ow * kh * kw * module.in_channels > PICK_LIMIT:
        whole = module(h)
        return whole[torch.arange(n, device=h.device), maps]
    windows = padded.permute(0, 2, 3, 1).reshape(n, height * width, module.in_channels)
    windows = windows.index_select(1, _window_index(height, width, kh, kw, h.device))
    windows = windows.view(n, oh * ow, kh * kw * module.in_channels)
    rows = module.weight.permute(0, 2, 3, 1).reshape(module.out_channels, -1)[maps]  # (i, j, channel) order
    out = torch.bmm(windows, rows.unsqueeze(2)).squeeze(2)
    out = out if bias is None else out + bias.unsqueeze(1)
    return apply_activation(module.activation, out).view(n, oh, ow)


@functools.lru_cache(maxsize=64)
def _window_index(height: int, width: int, kh: int, kw: int, device: torch.device) -> torch.Tensor:
    """For each output pixel (y, x) of a valid k x k conv, the flat input pixels of its window, (i, j) order."""
    oh, ow = height - kh + 1, width - kw + 1
    y, x, i, j = torch.meshgrid(torch.arange(oh), torch.arange(ow), torch.arange(kh), torch.arange(kw), indexing="ij")
    return ((y + i) * width + (x + j)).flatten().to(device)
