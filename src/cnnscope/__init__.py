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

# public name -> module that defines it
_API = {
    # the network and its files
    "CNN": "cnnscope.nn.model", "ModelSpec": "cnnscope.nn.model", "default_spec": "cnnscope.nn.model",
    "activations": "cnnscope.nn.model", "map_batches": "cnnscope.nn.model",
    "load_model": "cnnscope.nn.checkpoint", "load_checkpoint": "cnnscope.nn.checkpoint",
    "save_checkpoint": "cnnscope.nn.checkpoint", "import_keras": "cnnscope.nn.keras_import",
    # inputs
    "load_mnist": "cnnscope.data.mnist", "to_tensor": "cnnscope.data.mnist",
    "load_photo": "cnnscope.data.photos", "mnist_style": "cnnscope.data.images",
    # training
    "TrainSettings": "cnnscope.training.settings", "recipe_settings": "cnnscope.training.settings",
    "train": "cnnscope.training.loop", "run_training": "cnnscope.training.runs",
    # optimisation-based visualisation
    "objectives": "cnnscope.optvis.objectives", "ascend": "cnnscope.optvis.ascent", "AscentSettings": "cnnscope.optvis.ascent",
    "find_oips": "cnnscope.optvis.oip", "map_objectives": "cnnscope.optvis.oip",
    "logit_objectives": "cnnscope.optvis.oip", "add_dataset_max": "cnnscope.optvis.oip",
    "quality": "cnnscope.optvis.oip", "multiscale_noise": "cnnscope.optvis.starts",
    "dream": "cnnscope.optvis.dream", "DreamSettings": "cnnscope.optvis.dream",
    # analysis
    "evaluate": "cnnscope.analysis.evaluation", "class_patterns": "cnnscope.analysis.patterns",
    "attribute": "cnnscope.analysis.attribution",
    # pictures
    "zoo_picture": "cnnscope.figures.oip", "evolution_strip": "cnnscope.figures.oip",
    "layer_figure": "cnnscope.figures.activations", "render_panel": "cnnscope.figures.dream",
    "to_pil": "cnnscope.figures.render",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    module_name = _API.get(name)
    if module_name is None:
        raise AttributeError(f"module 'cnnscope' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
