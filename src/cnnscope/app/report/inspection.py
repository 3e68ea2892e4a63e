"""The "What each layer does" section of the demo report: activation grids of every layer for a
clear 4, an unclear 4 and a 9, the 4-vs-9 class patterns, and the attribution maps."""

from __future__ import annotations

import numpy as np

from cnnscope.analysis import attribution
from cnnscope.analysis.evaluation import predict_images
from cnnscope.analysis.patterns import (
    class_indices,
    class_patterns,
    most_confusable,
    pattern_layers,
    pick_examples,
)
from cnnscope.app.report.page import Figure, ReportContext, Section
from cnnscope.data.images import DigitImage, dataset_images, to_batch
from cnnscope.data.mnist import to_tensor
from cnnscope.figures.activations import layer_figures
from cnnscope.figures.attribution import explanation_figure
from cnnscope.figures.patterns import confusable_figure, pattern_figure, separating_figure
from cnnscope.files import save_image
from cnnscope.runtime import device_of

REPORT_DIGITS = (4, 9)


def report_section(ctx: ReportContext) -> Section:
    """Activation grids of every layer for a clear 4, an unclear 4 and a 9; the 4-vs-9 patterns; explanations."""
    first, second = REPORT_DIGITS
    examples = pick_examples(ctx.model, ctx.mnist, first, second)
    figures, facts = _report_grids(ctx, examples)
    more_figures, more_facts = _report_patterns(ctx)
    figures += more_figures + _report_explanations(ctx, examples)
    facts.update(more_facts)
    intro = ("The seed articles IV-VI look at the output of every map for a chosen digit, compare several images "
             f"of a \"{first}\" and ask what tells a \"{first}\" from a \"{second}\" at the last conv layer and at "
             "the first dense layer. Here are the same pictures, the comparison computed over many images, and "
             "the attribution maps known from Captum.")
    return Section("What each layer does", intro, figures, facts)


def _report_grids(ctx: ReportContext, examples: dict[str, DigitImage]) -> tuple[list, dict]:
    first, second = REPORT_DIGITS
    chosen = list(examples.values())
    unclear = examples["unclear_a"]
    p_second = float(predict_images(ctx.model, [unclear])[0][second])
    who = (f"a clear \"{first}\" ({examples['clear_a'].name}), the \"{first}\" the network finds most like a "
           f"\"{second}\" but still calls \"{first}\" ({unclear.name}, p({second}) = {p_second:.3f}) and a clear "
           f"\"{second}\" ({examples['clear_b'].name})")
    figures = []
    for layer, figure in layer_figures(ctx.model, chosen, cmap="viridis", scale="shared").items():
        path = f"inspect_activations_{layer}.png"
        save_image(ctx.folder / path, figure.image)
        shape = ctx.model.output_shape(layer)
        what = (f"all {shape[0]} maps ({shape[1]}x{shape[2]}), 8 per row from the top left"
                if len(shape) == 3 else f"all {shape[0]} nodes as coloured cells, 8 per row")
        figures.append(Figure(path, f"{layer}: {what}, for {who}. One colour scale for the three images, "
                                    "so brighter means a stronger response in every panel."))
    return figures, {"examples": who}


def _report_patterns(ctx: ReportContext) -> tuple[list, dict]:
    first, second = REPORT_DIGITS
    model, mnist = ctx.model, ctx.mnist
    count = 50 if ctx.quick else 200
    test_x, test_y = mnist.images("test")
    indices = [class_indices(test_y, digit, count) for digit in REPORT_DIGITS]
    tensors = [to_tensor(test_x[i]).to(device_of(model)) for i in indices]
    results = class_patterns(model, tensors[0], tensors[1], pattern_layers(model), REPORT_DIGITS)
    figures, facts = [], {}
    for layer, result in results.items():
        path = f"inspect_patterns_{layer}.png"
        save_image(ctx.folder / path, pattern_figure(result))
        figures.append(Figure(path, f"{layer}: mean activation of the first {count} test \"{first}\"s (left) and "
                                    f"\"{second}\"s (right). Circled points are active in at least 80% of a digit's "
                                    "images; red ones in at most 20% of the other digit's."))
        path = f"inspect_separating_{layer}.png"
        save_image(ctx.folder / path, separating_figure(result))
        best = result.top(3)
        figures.append(Figure(path, f"{layer}: the 16 {result.unit}s whose mean activation differs most between "
                                    f"\"{first}\"s and \"{second}\"s, ranked by ROC AUC; best: "
                                    + ", ".join(f"#{r[result.unit]} (AUC {r['auc']:.2f})" for r in best) + "."))
        facts[f"{layer}: best separating {result.unit}"] = f"#{best[0][result.unit]}, AUC {best[0]['auc']:.3f}, d {best[0]['smd']:+.2f}"
    rows = []
    for which, (digit, other) in enumerate(((first, second), (second, first))):
        items = most_confusable(model, tensors[which], other, 6 if ctx.quick else 8)
        pictures = dataset_images(mnist, [int(indices[which][item.position]) for item in items])
        rows.append((f"the \"{digit}\"s the network finds most like a \"{other}\" (of {count})", pictures, items, other))
    save_image(ctx.folder / "inspect_confusable.png", confusable_figure(rows))
    figures.append(Figure("inspect_confusable.png", f"The most confusable images among the {count} \"{first}\"s and "
                                                    f"\"{second}\"s: the network's probability for the other digit, highest first."))
    return figures, facts


def _report_explanations(ctx: ReportContext, examples: dict[str, DigitImage]) -> list:
    first, second = REPORT_DIGITS
    model = ctx.model
    chosen = list(examples.values())
    batch = to_batch(chosen, device_of(model))
    targets = attribution.resolve_target(model, batch, None).cpu().numpy()
    options = {"smoothgrad": {"samples": 8 if ctx.quick else 25, "seed": ctx.seed}}
    maps = {m: attribution.attribute(m, model, batch, None, **options.get(m, {})).numpy() for m in attribution.METHODS}
    cam_layer = attribution.default_gradcam_layer(model)
    titles = {"gradcam": f"Grad-CAM ({cam_layer})"}
    save_image(ctx.folder / "inspect_explain_methods.png",
               explanation_figure(chosen, maps, targets, predict_images(model, chosen), titles=titles))
    unclear = [examples["unclear_a"]] * 2
    unclear_batch = to_batch(unclear, device_of(model))
    versus_targets = np.array([first, second])
    versus = {"gradcam": attribution.gradcam(model, unclear_batch, versus_targets, layer=cam_layer).numpy(),
              "occlusion": attribution.occlusion(model, unclear_batch, versus_targets).numpy()}
    save_image(ctx.folder / "inspect_explain_4_vs_9.png",
               explanation_figure(unclear, versus, versus_targets, predict_images(model, unclear), titles=titles))
    return [
        Figure("inspect_explain_methods.png", "Why each image got its prediction: four attribution methods for the "
                                              "predicted class over the digit (red = most responsible). Saliency and "
                                              f"SmoothGrad are input gradients, Grad-CAM weighs the {cam_layer} maps, occlusion "
                                              "hides 4x4 patches and measures the drop of the class score."),
        Figure("inspect_explain_4_vs_9.png", f"The unclear \"{first}\" ({examples['unclear_a'].name}): what speaks for "
                                             f"\"{first}\" (top row) and what speaks for \"{second}\" (bottom row), by "
                                             f"Grad-CAM at {cam_layer} and by occlusion."),
    ]
