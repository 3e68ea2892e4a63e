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
# # OIPs: the input pattern a map likes most
#
# An "optimal input pattern" (OIP) is what the articles get by gradient ascent on the input image:
# start from multi-scale random noise, step along the L2-normalised gradient of a map's mean
# activation, standardise the image after every step, stop when the value no longer changes.
# `cnnscope.find_oips` runs that for many maps at once. Small settings here (80 steps); the
# command line's `cnnscope oip` uses the articles' full run.

# %%
import os

import cnnscope

model, config = cnnscope.load_model(os.environ.get("CNNSCOPE_MODEL") or None)
settings = cnnscope.AscentSettings(steps=80)
run = cnnscope.find_oips(model, cnnscope.map_objectives(model, "Conv2D_2", range(16)), settings)
cnnscope.to_pil(cnnscope.zoo_picture(run))

# %% [markdown]
# How one OIP evolves (the articles' log-spaced snapshots):

# %%
cnnscope.to_pil(cnnscope.evolution_strip(run, 3))

# %% [markdown]
# ## Strategy 1: coarse to fine
#
# The articles' "strategy 1" starts from the longest-wavelength noise only and adds the shorter
# scales' fluctuations stage by stage (`CoarseToFine(stage_steps)`, one stage per noise scale).

# %%
coarse = cnnscope.find_oips(model, cnnscope.map_objectives(model, "Conv2D_2", range(16)), settings,
                            strategy=cnnscope.CoarseToFine((10, 10, 20, 40)))
cnnscope.to_pil(cnnscope.zoo_picture(coarse))

# %% [markdown]
# ## The precursor: waking up maps that do not react
#
# Some maps of the deepest layer stay at zero from plain noise. The "precursor" screens several
# long-range noise candidates per map for a few steps (4 here) and runs the best one in full.

# %%
objectives = cnnscope.map_objectives(model, "Conv2D_3", range(16))
short = cnnscope.AscentSettings(steps=60)
plain = cnnscope.find_oips(model, objectives, short)
woken = cnnscope.find_oips(model, objectives, short, precursor=4, precursor_steps=10)
print(f"maps that reacted: {int(plain.reacted.sum())} of 16 from plain noise, "
      f"{int(woken.reacted.sum())} of 16 with the precursor")
cnnscope.to_pil(cnnscope.zoo_picture(woken))
