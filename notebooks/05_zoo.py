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
# # The zoo: the OIPs of whole layers, and of the ten digits
#
# The articles' "zoo" shows the OIP of every map of a layer side by side: edges and blobs in
# `Conv2D_1`, strokes in `Conv2D_2`, parts of digits in `Conv2D_3`. Faded tiles are maps that did
# not react. Small settings (60 steps) keep the notebook quick.

# %%
import os

import cnnscope

model, config = cnnscope.load_model(os.environ.get("CNNSCOPE_MODEL") or None)
mnist = cnnscope.load_mnist()
settings = cnnscope.AscentSettings(steps=60)

# %%
conv1 = cnnscope.find_oips(model, cnnscope.map_objectives(model, "Conv2D_1"), settings)
cnnscope.to_pil(cnnscope.zoo_picture(conv1))

# %%
conv3 = cnnscope.find_oips(model, cnnscope.map_objectives(model, "Conv2D_3", range(32)), settings)
cnnscope.to_pil(cnnscope.zoo_picture(conv3))

# %% [markdown]
# How good are they? Each OIP's value against the highest value any test image reaches for the
# same map (first 1000 test images):

# %%
cnnscope.add_dataset_max(conv3, model, cnnscope.to_tensor(mnist.test_x[:1000]))
cnnscope.quality(conv3)

# %% [markdown]
# ## The digits themselves: OIPs of the ten logits

# %%
logits = cnnscope.find_oips(model, cnnscope.logit_objectives(model), settings)
cnnscope.to_pil(cnnscope.zoo_picture(logits, columns=10))
