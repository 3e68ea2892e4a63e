"""Why this prediction: attribution maps for a class, one uniform shape.

Every method is `method(model, images, target=None, ...) -> N x H x W` tensor (CPU, float),
for raw images N x 1 x H x W in [0, 1], like Captum's `attribute(inputs, target)`. `target`
is a class number, one per image, or None for the predicted class. Larger values mean
"more responsible for the class score" (the class logit); `ink_share` says how much of a map
falls on the digit's strokes. Plotting lives elsewhere (`cnnscope.figures.attribution`).
Every method works on a frozen model too (parameters with `requires_grad=False`).

- `saliency`: |d logit / d pixel| (Simonyan et al. 2013).
- `smoothgrad`: the mean |gradient| over `samples` noisy copies of the image, noise std =
  `noise` x the image's value range (Smilkov et al. 2017); seeded.
- `gradcam`: ReLU(sum_c w_c A_c) at a conv or pool layer, w_c = the spatial mean of
  d logit / d A_c (Selvaraju et al. 2017), brought to the image size by bilinear
  interpolation between the layer pixels' receptive-field centres (Conv2D_3's 3x3 pixels
  look at input pixels 8.5, 12.5, 16.5 — stretching 3x3 to 28x28 would put them at 4, 14, 23).
- `occlusion`: how much the class logit drops when a `window` x `window` patch is set to
  `baseline`, averaged over all patches covering a pixel (Zeiler & Fergus 2014; Captum's
  Occlusion). Positive: the pixels support the class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cnnscope.errors import UserError, check_choice, check_positive
from cnnscope.nn.model import CNN
from cnnscope.runtime import device_of

METHODS = ("saliency", "smoothgrad", "gradcam", "occlusion")


def resolve_target(model: CNN, images: torch.Tensor, target: int | Sequence[int] | torch.Tensor | None) -> torch.Tensor:
    """One class number per image (LongTensor N on the model's device); None: the predicted class."""
    device = device_of(model)
    if target is None:
        with torch.no_grad():
            return model(images.to(device)).argmax(dim=1)
    classes = model.num_classes
    values = torch.as_tensor(target, dtype=torch.long, device=device).reshape(-1)
    if values.numel() == 1:
        values = values.expand(len(images))
    if values.numel() != len(images):
        raise UserError(f"got {values.numel()} targets for {len(images)} images")
    bad = values[(values < 0) | (values >= classes)]
    if bad.numel():
        raise UserError(f"target class {int(bad[0])} is out of range 0..{classes - 1}")
    return values.clone()


def saliency(model: CNN, images: torch.Tensor, target=None) -> torch.Tensor:
    """|d logit_target / d input|, max over channels: N x H x W."""
    targets = resolve_target(model, images, target)
    return _input_gradient(model, images.to(device_of(model)), targets).abs().amax(dim=1).cpu()


def smoothgrad(model: CNN, images: torch.Tensor, target=None, samples: int = 25, noise: float = 0.15,
               seed: int = 0, batch_size: int = 256) -> torch.Tensor:
    """Mean |gradient| over `samples` copies with Gaussian noise (std = noise x value range): N x H x W."""
    check_positive("samples", samples)
    check_positive("noise", noise, allow_zero=True)
    device = device_of(model)
    images = images.to(device)
    targets = resolve_target(model, images, target)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    span = (images.amax(dim=(1, 2, 3), keepdim=True) - images.amin(dim=(1, 2, 3), keepdim=True)).clamp_min(1e-8)
    total = torch.zeros_like(images)
    copies = max(1, batch_size // max(1, len(images)))
    done = 0
    while done < samples:
        k = min(copies, samples - done)
        batch = images.repeat(k, 1, 1, 1)
        noisy = batch + torch.randn(batch.shape, generator=generator, device=device) * (noise * span.repeat(k, 1, 1, 1))
        grads = _input_gradient(model, noisy, targets.repeat(k)).abs()
        total += grads.reshape(k, *images.shape).sum(dim=0)
        done += k
    return (total / samples).amax(dim=1).cpu()


def default_gradcam_layer(model: CNN) -> str:
    """The last conv layer with maps of at least 7x7 (Conv2D_2 here: Conv2D_3's 3x3 is too coarse
    to point at strokes of a 28x28 digit); the last conv layer if none is that large."""
    convs = model.layers_of_kind("conv")
    if not convs:
        raise UserError("Grad-CAM needs a model with a conv layer")
    fine = [name for name in convs if min(model.output_shape(name)[1:]) >= 7]
    return (fine or convs)[-1]


def gradcam(model: CNN, images: torch.Tensor, target=None, layer: str | None = None, upsample: bool = True) -> torch.Tensor:
    """Grad-CAM at a conv or pool layer (default `default_gradcam_layer`): N x H x W (input
    size) or N x h x w (`upsample=False`)."""
    layer = layer or default_gradcam_layer(model)
    model.check_layer(layer)
    if not model.is_spatial(layer):
        spatial = [name for name in model.layer_names if model.is_spatial(name)]
        raise UserError(f"Grad-CAM needs a conv or pool layer, not {layer!r}; choose one of: {', '.join(spatial)}")
    device = device_of(model)
    images = images.to(device)
    targets = resolve_target(model, images, target)
    last = model.layer_names[-1]
    with torch.enable_grad():
        # an input that needs a gradient: the layer's maps then need one even if the model is frozen
        outputs = model.activations(images.detach().requires_grad_(True), [layer, last])
        score = outputs[last].gather(1, targets[:, None]).sum()
        (grads,) = torch.autograd.grad(score, outputs[layer])
    maps = outputs[layer].detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * maps).sum(dim=1, keepdim=True))
    if upsample:
        cam = to_input_grid(cam, receptive_field(model, layer), images.shape[-2:])
    return cam[:, 0].detach().cpu()


def receptive_field(model: CNN, layer: str) -> tuple[float, float]:
    """(offset, jump): pixel i of `layer` is centred on input pixel offset + jump * i (the model's own
    `receptive_field`: from the spec for a `CNN`, from the traced modules for a `from_torch` model)."""
    return model.receptive_field(layer)


def to_input_grid(maps: torch.Tensor, field: tuple[float, float], size: Sequence[int]) -> torch.Tensor:
    """N x 1 x h x w layer maps -> N x 1 x H x W: bilinear between receptive-field centres, constant beyond."""
    offset, jump = field
    h, w = maps.shape[-2:]
    height, width = int(size[0]), int(size[1])

    def axis(n_in: int, n_out: int) -> torch.Tensor:
        position = (torch.arange(n_out, dtype=maps.dtype, device=maps.device) - offset) / jump
        return 2 * position / (n_in - 1) - 1 if n_in > 1 else torch.zeros(n_out, dtype=maps.dtype, device=maps.device)

    gy, gx = torch.meshgrid(axis(h, height), axis(w, width), indexing="ij")
    grid = torch.stack([gx, gy], dim=-1).expand(len(maps), height, width, 2)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=True)


def occlusion(model: CNN, images: torch.Tensor, target=None, window: int = 4, stride: int = 2,
              baseline: float = 0.0, batch_size: int = 512) -> torch.Tensor:
    """Mean drop of the class logit over the `window` x `window` patches covering each pixel: N x H x W."""
    check_positive("window", window)
    check_positive("stride", stride)
    device = device_of(model)
    images = images.to(device)
    n, channels, height, width = images.shape
    if window > min(height, width):
        raise UserError(f"occlusion window {window} is larger than the image ({height}x{width})")
    targets = resolve_target(model, images, target)
    ys, xs = _positions(height, window, stride), _positions(width, window, stride)
    patches = [(y, x) for y in ys for x in xs]
    masks = torch.ones(len(patches), 1, height, width, device=device)
    for i, (y, x) in enumerate(patches):
        masks[i, :, y:y + window, x:x + window] = 0.0
    covered = (1.0 - masks).sum(dim=0)[0]  # how many patches cover each pixel
    result = torch.zeros(n, height, width, device=device)
    with torch.no_grad():
        for index in range(n):
            image = images[index:index + 1]
            for start in range(0, len(patches), batch_size):
                mask = masks[start:start + batch_size]
                occluded = image * mask + baseline * (1.0 - mask)
                # the image itself in the same batch: the same kernels score it, so hiding blank
                # pixels drops the logit by exactly 0 (a separate batch differs in the last bits)
                scores = model(torch.cat([image, occluded]))[:, targets[index]]
                drop = scores[0] - scores[1:]
                result[index] += ((1.0 - mask[:, 0]) * drop[:, None, None]).sum(dim=0)
    return (result / covered.clamp_min(1.0)).cpu()


def attribute(method: str, model: CNN, images: torch.Tensor, target=None, **options) -> torch.Tensor:
    """Run the attribution method named `method` (one of METHODS) with its options."""
    check_choice("attribution method", method, METHODS)
    function = {"saliency": saliency, "smoothgrad": smoothgrad, "gradcam": gradcam, "occlusion": occlusion}[method]
    return function(model, images, target, **options)


def normalize_attribution(attribution: torch.Tensor) -> torch.Tensor:
    """Each map divided by its largest absolute value (negative values clipped to 0): N x H x W in [0, 1]."""
    positive = attribution.clamp_min(0.0)
    peak = positive.flatten(1).amax(dim=1).clamp_min(1e-12)
    return positive / peak[:, None, None]


def ink_share(attribution: np.ndarray, pixels: np.ndarray, ink: float = 0.3) -> float:
    """Share of the positive attribution that falls on ink pixels.

    Args:
        attribution: one H x W map.
        pixels: the uint8 H x W digit it explains.
        ink: pixels with at least this share of full scale (255) count as ink.

    Returns:
        A number in [0, 1]; 0 for a map without positive values.
    """
    positive = np.clip(np.asarray(attribution, dtype=np.float64), 0, None)
    total = positive.sum()
    return float(positive[np.asarray(pixels) >= ink * 255].sum() / total) if total > 0 else 0.0


def _input_gradient(model: CNN, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        x = images.detach().clone().requires_grad_(True)
        score = model(x).gather(1, targets[:, None]).sum()
        (grad,) = torch.autograd.grad(score, x)
    return grad


def _positions(size: int, window: int, stride: int) -> list[int]:
    positions = list(range(0, size - window + 1, stride))
    if positions[-1] != size - window:
        positions.append(size - window)
    return positions

