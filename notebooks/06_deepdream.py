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
# # DeepDream with the MNIST network
#
# The articles dream with the MNIST CNN on a photo: shrink the photo to the network's 28x28,
# ascend one map's activation, blow the change back up and re-add the detail that shrinking lost.
# `cnnscope.dream` does that ("downscale"), and also dreams in octaves with detail re-injection
# and at the photo's own resolution (the conv layers are fully convolutional). Few steps here.

# %%
import os

import cnnscope

model, config = cnnscope.load_model(os.environ.get("CNNSCOPE_MODEL") or None)
photo = cnnscope.load_photo(sample="flower", max_side=256)
objective = cnnscope.objectives.channel("Conv2D_3", 56)

# %%
downscale = cnnscope.dream(model, photo, objective, cnnscope.DreamSettings(steps=20, rounds=2))
cnnscope.to_pil(cnnscope.render_panel(photo, downscale))

# %% [markdown]
# Octaves: the same map, ascended at three scales of the photo (each octave starts from the
# previous one's dream plus the detail lost by shrinking):

# %%
octaves = cnnscope.dream(model, photo, objective, cnnscope.DreamSettings(mode="octaves", steps=10, octaves=2))
cnnscope.to_pil(cnnscope.render_panel(photo, octaves))

# %% [markdown]
# A weighted mix of layers, dreamt at the photo's own resolution:

# %%
mix = cnnscope.objectives.weighted([(cnnscope.objectives.layer("Conv2D_2"), 1.0),
                                    (cnnscope.objectives.channel("Conv2D_3", 56), 2.0)])
native = cnnscope.dream(model, photo, mix, cnnscope.DreamSettings(mode="native", steps=5, rounds=2))
cnnscope.to_pil(cnnscope.render_panel(photo, native))
