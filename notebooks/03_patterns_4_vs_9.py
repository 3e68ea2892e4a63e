# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Patterns: which maps tell a "4" from a "9"?
#
# The articles average the maps of many images of one digit and compare two digits that look
# alike. `cnnscope.class_patterns` does this for 200 test images of each digit: for every map of a
# layer, how well its mean activation separates the two classes (AUC), and which maps are active.

# %%
import os

import numpy as np

import cnnscope

model, config = cnnscope.load_model(os.environ.get("CNNSCOPE_MODEL") or None)
mnist = cnnscope.load_mnist()
fours = cnnscope.to_tensor(mnist.test_x[np.flatnonzero(mnist.test_y == 4)[:200]])
nines = cnnscope.to_tensor(mnist.test_x[np.flatnonzero(mnist.test_y == 9)[:200]])
patterns = cnnscope.class_patterns(model, fours, nines, ["Conv2D_3", "Dense_1"], (4, 9))

# %%
cnnscope.to_pil(cnnscope.pattern_figure(patterns["Conv2D_3"]))

# %% [markdown]
# The maps that separate the two digits best, with their class averages:

# %%
cnnscope.to_pil(cnnscope.separating_figure(patterns["Conv2D_3"], top=8))

# %%
cnnscope.to_pil(cnnscope.pattern_figure(patterns["Dense_1"]))

# %% [markdown]
# ## Which pixels decide? Grad-CAM and saliency for a few 4s and 9s

# %%
picked = [int(i) for i in np.flatnonzero(mnist.test_y == 4)[:2]] + [int(i) for i in np.flatnonzero(mnist.test_y == 9)[:2]]
images = cnnscope.dataset_images(mnist, picked)
x = cnnscope.to_tensor(mnist.test_x[picked])
maps = {method: cnnscope.attribute(method, model, x).numpy() for method in ("saliency", "gradcam")}
probabilities = model.probabilities(x).detach().numpy()
cnnscope.to_pil(cnnscope.explanation_figure(images, maps, probabilities.argmax(axis=1), probabilities))
