"""Dataset examples next to every OIP: the test images that drive each target most (and, on
request, images from the middle and the bottom of the ranking), with their values.

Human studies found natural examples at least as informative as synthetic pictures (Borowski
et al. 2021, Zimmermann et al. 2021), so every OIP can be shown next to them.
`target_values(model, objectives, images)` measures every target on every image in one batched
pass (`nn.model.map_batches`) and caches the M x N table on disk, keyed by the model's weights,
the targets and the images: a second call for the same model and layer reads it back.
`dataset_examples(values, k)` ranks it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cnnscope.errors import check_whole
from cnnscope.nn.model import map_batches
from cnnscope.optvis import objectives as O

EXAMPLES = 9
RANKS = ("top", "middle", "bottom")


def _fingerprint(model, objectives: Sequence[O.Objective], images: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update("\n".join(o.name for o in objectives).encode())
    digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def _compute_values(model, objectives: Sequence[O.Objective], images: torch.Tensor, batch_size: int) -> torch.Tensor:
    combined = O.Objective(lambda acts: torch.zeros(0), [n for o in objectives for n in o.layers], "all")

    def values_of(batch: torch.Tensor) -> torch.Tensor:
        acts = O.capture(model, batch.float(), combined, normalize=True)
        return torch.stack([o(acts) for o in objectives], dim=0).float().cpu()

    return torch.cat(map_batches(model, images, values_of, batch_size), dim=1)


def target_values(model, objectives: Sequence[O.Objective], images: torch.Tensor, batch_size: int = 1000,
                  cache: bool = True) -> torch.Tensor:
    """Every target's value on every raw [0, 1] image (M x N), through the model's own normalisation;
    cached in $CNNSCOPE_HOME/examples (keyed by weights, targets and images) unless `cache=False`."""
    from cnnscope.data.mnist import cnnscope_home
    from cnnscope.files import write_bytes

    if not cache:
        return _compute_values(model, objectives, images, batch_size)
    path = cnnscope_home() / "examples" / f"{_fingerprint(model, objectives, images)}.npy"
    if path.is_file():
        array = np.load(path, allow_pickle=False)
        if array.shape == (len(objectives), images.shape[0]):
            return torch.from_numpy(array)
    values = _compute_values(model, objectives, images, batch_size)
    buffer = io.BytesIO()
    np.save(buffer, values.numpy(), allow_pickle=False)
    write_bytes(path, buffer.getvalue())
    return values


@dataclass
class DatasetExamples:
    """Per target (row) the indices and values of `k` test images at each rank ("top" first)."""

    index: dict[str, torch.Tensor]  # rank -> M x k image indices
    value: dict[str, torch.Tensor]  # rank -> M x k values

    def to_json(self, target: int) -> dict:
        return {rank: [{"index": int(i), "value": float(f"{float(v):.6g}")}
                       for i, v in zip(self.index[rank][target], self.value[rank][target], strict=True)]
                for rank in self.index}


def dataset_examples(values: torch.Tensor, k: int = EXAMPLES, spread: bool = False) -> DatasetExamples:
    """The `k` images with the highest values per target (M x N `values`), best first; with
    `spread` also `k` from the middle of the ranking and the `k` lowest."""
    k = min(check_whole("examples", k, minimum=1), values.shape[1])
    order = values.argsort(dim=1, descending=True, stable=True)
    middle = max(0, (values.shape[1] - k) // 2)
    picks = {"top": order[:, :k]}
    if spread:
        picks["middle"] = order[:, middle:middle + k]
        picks["bottom"] = order[:, -k:]
    return DatasetExamples(index=picks, value={rank: values.gather(1, idx) for rank, idx in picks.items()})
