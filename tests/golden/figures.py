"""Golden figures: numbers from fixed seeds that a restructure must not change.

`compute(model, mnist)` runs the OIP engine (articles' rule, precursor and restarts, Adam with
jitter, blur, total variation and early stopping), the three dream modes, a short training run,
the evaluation, the 4-vs-9 patterns and the four attribution methods on `golden_model()`, and
returns every number as plain floats. `tests/golden/figures.json` holds the values recorded
(first before the restructure, issue 11), `test_golden.py` compares against them.

`golden_model()` is the conftest's small model as it was trained when the figures were recorded,
its weights stored in `model.safetensors`: trained again on another CPU, its 300 Adam steps turn
the kernels' last-bit differences into another model (40% other dataset maxima, other maps that
react), which no tolerance on the figures could absorb.

    python tests/golden/figures.py        # re-record (only when a change of numbers is intended)
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from contextlib import contextmanager
from pathlib import Path

import torch

GOLDEN = Path(__file__).with_name("figures.json")
MODEL = Path(__file__).with_name("model.safetensors")


@contextmanager
def on_the_plain_network():
    """The ascent through the model's own forward pass (`PlainNetwork`), as the figures were first
    recorded; the default `FastCNN` sums in another order (test_golden's FAST_BOUNDS)."""
    from cnnscope.nn.inference import inference_copy
    from cnnscope.optvis import ascent, networks, oip

    def plain(model, device):
        return networks.PlainNetwork(inference_copy(model, channels_last=device.type == "cpu"))

    saved = ascent.ascent_network, oip.ascent_network
    ascent.ascent_network = oip.ascent_network = plain
    try:
        yield
    finally:
        ascent.ascent_network, oip.ascent_network = saved


def _store_model(model) -> None:
    from safetensors.torch import save_file

    save_file({name: value.contiguous() for name, value in model.state_dict().items()}, str(MODEL))


def golden_model():
    """The small model the figures were recorded on (stored weights, the same on every CPU)."""
    from safetensors.torch import load_file

    from cnnscope.nn.model import CNN
    from cnnscope.nn.spec import default_spec

    model = CNN(default_spec())
    model.load_state_dict(load_file(str(MODEL)))
    return model.eval()


def cpu_key() -> str:
    """Machine identity for bitwise comparison: CPU model and flags, torch version, threads."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                flags += line
    except OSError:
        flags = platform.processor()
    text = f"{flags}|{torch.__version__}|{platform.machine()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _floats(tensor) -> list[float]:
    return [float(v) for v in torch.as_tensor(tensor).double().flatten().tolist()]


def compute(model, mnist) -> dict:
    """Every recorded figure: the ascent's (`ascent_figures`) and the rest."""
    return {**ascent_figures(model, mnist), **other_figures(model, mnist)}


def ascent_figures(model, mnist) -> dict:
    """The figures made by gradient ascent: OIP zoos, precursors, Adam, nodes, the three dreams."""
    from cnnscope.app.parsing import parse_layer_mix
    from cnnscope.data.mnist import to_tensor
    from cnnscope.data.photos import load_photo
    from cnnscope.optvis import objectives as O
    from cnnscope.optvis.ascent import AscentSettings
    from cnnscope.optvis.dream import DreamSettings, dream
    from cnnscope.optvis.oip import dataset_max, find_oips, logit_objectives, map_objectives

    out: dict[str, list[float]] = {}
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        zoo = find_oips(model, map_objectives(model, "Conv2D_3"), AscentSettings(steps=120), seed=0)
        out["zoo_final"] = _floats(zoo.final)
        out["zoo_reacted"] = _floats(zoo.reacted)
        out["zoo_image_sums"] = _floats(zoo.images.double().abs().flatten(1).sum(1))
        out["zoo_snapshot_sums"] = [float(zoo.snapshots[k].double().abs().sum()) for k in sorted(zoo.snapshots)]
        test_x = to_tensor(mnist.test_x[:2000])
        best, where = dataset_max(model, map_objectives(model, "Conv2D_3", range(16)), test_x)
        out["dataset_max"] = _floats(best)
        out["dataset_argmax"] = _floats(where)

        pre = find_oips(model, map_objectives(model, "Conv2D_2", range(12)), AscentSettings(steps=60),
                        precursor=4, precursor_steps=8, restarts=2, seed=3)
        out["precursor_final"] = _floats(pre.final)
        out["precursor_restart"] = _floats(pre.restart)
        out["precursor_kind"] = [float(k == "precursor") for k in pre.start_kind]
        out["precursor_image_sums"] = _floats(pre.images.double().abs().flatten(1).sum(1))

        adam = AscentSettings(steps=80, epsilon=0.05, rule="adam", jitter=2, blur=0.5, tv_weight=0.1,
                              early_stop=True, seed=5)
        logits = find_oips(model, logit_objectives(model), adam, seed=1)
        out["adam_final"] = _floats(logits.final)
        out["adam_steps_used"] = _floats(logits.steps_used)
        out["adam_image_sums"] = _floats(logits.images.double().abs().flatten(1).sum(1))
        nodes = find_oips(model, [O.node("Conv2D_2", 3), O.node("Dense_1", 7), O.layer("Max_Pool_1")],
                          AscentSettings(steps=50), seed=2)
        out["node_final"] = _floats(nodes.final)

        photo = load_photo(sample="flower", max_side=96)
        down = dream(model, photo, O.channel("Conv2D_3", 5), DreamSettings(steps=15, rounds=2, seed=1))
        out["dream_downscale_values"] = [float(v) for v in down.values]
        out["dream_downscale_sum"] = [float(down.luminance.double().sum())]
        octaves = dream(model, photo, parse_layer_mix("Conv2D_2:1,Conv2D_3:2"),
                        DreamSettings(mode="octaves", steps=5, octaves=2, px=1.5, seed=2))
        out["dream_octaves_values"] = [float(v) for v in octaves.values]
        out["dream_octaves_sum"] = [float(octaves.luminance.double().sum())]
        native = dream(model, photo, O.channel("Conv2D_2", 1), DreamSettings(mode="native", steps=3, rounds=2,
                                                                             tile=56, seed=4))
        out["dream_native_values"] = [float(v) for v in native.values]
        out["dream_native_sum"] = [float(native.luminance.double().sum())]
    finally:
        torch.set_num_threads(previous)
    return out


def other_figures(model, mnist) -> dict:
    """Training, evaluation, the 4-vs-9 patterns and the attribution maps."""
    from cnnscope.analysis import attribution
    from cnnscope.analysis.evaluation import evaluate
    from cnnscope.analysis.patterns import class_indices, class_patterns
    from cnnscope.data.mnist import to_tensor
    from cnnscope.training.loop import train
    from cnnscope.training.settings import TrainSettings

    out: dict[str, list[float]] = {}
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        settings = TrainSettings(recipe="custom", epochs=2, batch_size=64, lr=2e-3, train_images=1000,
                                 test_images=500, augment="shift", l2=1e-4, ema=0.9, threads=1)
        state = train(settings, mnist, progress=False, log=lambda line: None)
        out["train_history"] = [float(v) for r in state.history
                                for v in (r.loss, r.accuracy, r.test_loss, r.test_accuracy)]
        out["train_weight_sum"] = [float(sum(p.detach().double().abs().sum() for p in state.model.parameters()))]

        evaluation = evaluate(model, mnist.test_x[:1000], mnist.test_y[:1000])
        out["evaluation_probability_sums"] = _floats(torch.from_numpy(evaluation.probabilities).sum(1)[:50])
        out["evaluation_confusion"] = _floats(torch.from_numpy(evaluation.confusion()))

        fours = to_tensor(mnist.test_x[class_indices(mnist.test_y, 4, 100)])
        nines = to_tensor(mnist.test_x[class_indices(mnist.test_y, 9, 100)])
        patterns = class_patterns(model, fours, nines, ["Conv2D_3", "Dense_1"], (4, 9))
        out["patterns_auc"] = [float(v) for p in patterns.values() for v in p.auc.flatten()]
        out["patterns_smd"] = [float(v) for p in patterns.values() for v in p.smd.flatten()]

        digits = to_tensor(mnist.test_x[:3])
        for method in attribution.METHODS:
            options = {"samples": 6} if method == "smoothgrad" else {}
            out[f"attribution_{method}"] = _floats(attribution.attribute(method, model, digits, None, **options))
    finally:
        torch.set_num_threads(previous)
    return out


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import cnnscope  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)
    from cnnscope.data.mnist import load_mnist
    from conftest import train_small

    mnist = load_mnist()
    _store_model(train_small(mnist))
    with on_the_plain_network():
        values = compute(golden_model(), mnist)
    GOLDEN.write_text(json.dumps({"cpu_key": cpu_key(), "values": values}, indent=0) + "\n")
    print(f"wrote {GOLDEN} ({sum(len(v) for v in values.values())} numbers, cpu {cpu_key()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
