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
# # Activation maps: what every layer makes of a digit
#
# The articles call the maps of a conv layer its "FCPs" and plot all of them for one image. The
# model here is cnnscope's default model (`cnnscope train` makes it), or the folder named by the
# environment variable `CNNSCOPE_MODEL`.

# %%
import os

import cnnscope

model, config = cnnscope.load_model(os.environ.get("CNNSCOPE_MODEL") or None)
mnist = cnnscope.load_mnist()
print(model.summary())

# %% [markdown]
# All 32 maps of `Conv2D_1` for test image 0, one colour scale for the whole layer:

# %%
digits = cnnscope.dataset_images(mnist, [0, 1, 2])
cnnscope.layer_figure(model, digits[:1], "Conv2D_1")

# %% [markdown]
# The deepest conv layer for three digits side by side, each map scaled to its own range (as the
# articles plot them):

# %%
cnnscope.layer_figure(model, digits, "Conv2D_3", scale="per_map")

# %% [markdown]
# Dense layers are nodes; `Dense_2` holds the ten logits:

# %%
cnnscope.layer_figure(model, digits, "Dense_2", numbers=True)

# %% [markdown]
# The raw numbers behind a picture are one call away (a tensor per layer):

# %%
x = cnnscope.to_tensor(mnist.test_x[:3])
outputs = cnnscope.activations(model, x, ["Conv2D_1", "Dense_1"])
{name: tuple(value.shape) for name, value in outputs.items()}

# %% [markdown]
# ## Probabilities and the confusion matrix (1000 test images)

# %%
evaluation = cnnscope.evaluate(model, cnnscope.to_tensor(mnist.test_x[:1000]), mnist.test_y[:1000])
print(f"accuracy on the first 1000 test images: {evaluation.accuracy:.2%}")
cnnscope.confusion_figure(evaluation)
