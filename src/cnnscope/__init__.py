"""cnnscope: train a small CNN on MNIST and see what it learned.

The public API in one import (a notebook needs nothing else):

    import cnnscope
    model, config = cnnscope.load_model()                      # the default model (or a folder)
    mnist = cnnscope.load_mnist()
    run = cnnscope.find_oips(model, cnnscope.map_objectives(model, "Conv2D_3"))
    picture = cnnscope.zoo_picture(run)                        # an RGB array; PIL: cnnscope.to_pil(picture)

Names are loaded on first use, so `import cnnscope` stays instant (the command line's
`--help` does not wait for torch).
"""

import importlib
import os

# OpenMP threads that spin while waiting make torch up to 12x slower when other processes
# share the cores (measured by benchmarks/train_speed.py); sleeping threads avoid that.
# Must be set before torch is imported; an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# module -> the public names it defines
_MODULES = {
    "cnnscope.nn.spec": ("ModelSpec", "Normalization", "default_spec"),
    "cnnscope.nn.model": ("CNN", "activations", "map_batches",
                          "per_pixel_statistics"),
    "cnnscope.nn.checkpoint": ("load_model", "load_checkpoint", "save_checkpoint"),
    "cnnscope.nn.keras_import": ("import_keras",),
    "cnnscope.nn.onnx_import": ("import_onnx",),
    "cnnscope.nn.torch_model": ("from_torch", "TorchModel"),
    "cnnscope.data.mnist": ("load_mnist", "to_tensor"),
    "cnnscope.data.photos": ("load_photo",),
    "cnnscope.data.images": ("mnist_style", "dataset_images"),
    "cnnscope.training.settings": ("TrainSettings", "recipe_settings"),
    "cnnscope.training.loop": ("train",),
    "cnnscope.training.runs": ("run_training",),
    "cnnscope.training.sweep": ("grid_runs", "run_sweep"),
    "cnnscope.optvis.objectives": ("objectives",),  # the module itself
    "cnnscope.optvis.ascent": ("ascend", "AscentSettings"),
    "cnnscope.optvis.oip": ("find_oips", "map_objectives", "logit_objectives", "add_dataset_max", "quality"),
    "cnnscope.optvis.starts": ("multiscale_noise",),
    "cnnscope.optvis.strategies": ("CoarseToFine",),
    "cnnscope.optvis.dream": ("dream",),
    "cnnscope.optvis.dream_settings": ("DreamSettings",),
    "cnnscope.analysis.evaluation": ("evaluate",),
    "cnnscope.analysis.patterns": ("class_patterns",),
    "cnnscope.analysis.attribution": ("attribute",),
    "cnnscope.analysis.compare": ("compare_models",),
    "cnnscope.analysis.similarity": ("linear_cka", "match_units"),
    "cnnscope.figures.oip": ("zoo_picture", "evolution_strip"),
    "cnnscope.figures.activations": ("layer_figure",),
    "cnnscope.figures.training": ("curves_figure",),
    "cnnscope.figures.evaluation": ("confusion_figure",),
    "cnnscope.figures.patterns": ("pattern_figure", "separating_figure"),
    "cnnscope.figures.attribution": ("explanation_figure",),
    "cnnscope.figures.dream": ("render_panel",),
    "cnnscope.figures.render": ("to_pil",),
    "cnnscope.app.explorer.python_api": ("explore",),
}
_SUBMODULES = ("objectives",)  # names that are a module themselves (`cnnscope.dream` is the function)
_API = {name: module for module, names in _MODULES.items() for name in names}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    module_name = _API.get(name)
    if module_name is None:
        raise AttributeError(f"module 'cnnscope' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if name in _SUBMODULES else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
