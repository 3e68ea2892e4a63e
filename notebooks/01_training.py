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
# # Training the articles' CNN with the articles' knobs
#
# The seed articles train a small Keras CNN on MNIST (Conv2D_1 32@3x3, Max_Pool_1, Conv2D_2 64@3x3,
# Max_Pool_2, Conv2D_3 128@3x3, Flatten, Dense_1 100, Dense_2 10) with RMSprop, an inverse-time
# learning-rate decay per step ("powerSched") and L2 on the dense kernels, and watch the loss and
# accuracy curves live. `cnnscope.recipe_settings("seed")` holds exactly those knobs; here they run
# on 640 training images for two epochs, so the notebook takes seconds (the articles trained on
# all 60000 images for 15-80 epochs; `cnnscope train --recipe seed` does).

# %%
from dataclasses import replace

import cnnscope

mnist = cnnscope.load_mnist()
seed = cnnscope.recipe_settings("seed")
seed.describe()

# %%
quick = replace(seed, epochs=2, train_images=640, test_images=320)
state = cnnscope.train(quick, mnist, progress=False)
cnnscope.curves_figure(state.history, quick)

# %% [markdown]
# ## Change one knob
#
# The same run with Adamax and an exponential decay instead of RMSprop and powerSched, and L1
# instead of L2 (all of the articles' options are fields of `TrainSettings`).

# %%
other = replace(quick, optimizer="adamax", lr=2e-3, momentum=None, schedule="exponential", decay_rate=0.9,
                decay_steps=None, l2=0.0, l1=1e-4)
other_state = cnnscope.train(other, mnist, progress=False)
cnnscope.curves_figure(other_state.history, other)

# %%
{"seed recipe": state.history[-1].test_accuracy, "adamax + exponential + L1": other_state.history[-1].test_accuracy}
