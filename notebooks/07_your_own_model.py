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
# # Your own PyTorch model in every view
#
# Any PyTorch CNN works: `cnnscope.from_torch(module, input_size, normalize=...)` wraps it, its
# layers named by their module paths (`features.0`, `classifier.1`). Nothing in your module is
# changed: outputs are captured by hooks that exist only during a call.
#
# First a hand-written CNN, trained for a few seconds on 2000 MNIST images with plain PyTorch
# (torchvision's usual normalisation, mean 0.1307 and std 0.3081).

# %%
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import cnnscope


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 5 * 5, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


mnist = cnnscope.load_mnist()
torch.manual_seed(0)
net = SmallNet()
x = (cnnscope.to_tensor(mnist.train_x[:2000]) - 0.1307) / 0.3081
y = torch.from_numpy(mnist.train_y[:2000].astype(np.int64))
optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
for start in range(0, 2000, 32):  # one epoch, batches of 32
    loss = F.cross_entropy(net(x[start:start + 32]), y[start:start + 32])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
net.eval()

# %% [markdown]
# ## Wrap it
#
# `normalize` says how raw [0, 1] images become the module's input (None if your module
# normalises itself). By default the layers are the conv, pooling and linear modules, in the
# order the forward pass runs them; `layers=[...]` names others (a ReLU, a BatchNorm, a block).

# %%
model = cnnscope.from_torch(net, input_size=(1, 28, 28), normalize=cnnscope.Normalization("global", 0.1307, 0.3081))
print(model.summary())

# %%
evaluation = cnnscope.evaluate(model, cnnscope.to_tensor(mnist.test_x[:1000]), mnist.test_y[:1000])
print(f"accuracy on 1000 test images: {evaluation.accuracy:.2%}")
cnnscope.layer_figure(model, cnnscope.dataset_images(mnist, [0, 1, 2]), "features.4")

# %% [markdown]
# ## Grad-CAM, OIPs and a dream, as for cnnscope's own model

# %%
picked = [0, 1, 2, 3]
x = cnnscope.to_tensor(mnist.test_x[picked])
maps = {"gradcam": cnnscope.attribute("gradcam", model, x, layer="features.4").numpy()}
probabilities = model.probabilities(x).detach().numpy()
cnnscope.to_pil(cnnscope.explanation_figure(cnnscope.dataset_images(mnist, picked), maps,
                                            probabilities.argmax(axis=1), probabilities))

# %%
run = cnnscope.find_oips(model, cnnscope.map_objectives(model, "features.4"), cnnscope.AscentSettings(steps=60))
cnnscope.to_pil(cnnscope.zoo_picture(run))

# %%
photo = cnnscope.load_photo(sample="china", max_side=256)
result = cnnscope.dream(model, photo, cnnscope.objectives.channel("features.4", 3),
                        cnnscope.DreamSettings(mode="octaves", steps=10, octaves=2))
cnnscope.to_pil(cnnscope.render_panel(photo, result))

# %% [markdown]
# ## The explorer on this model
#
# `cnnscope.explore(model)` serves the web explorer from this notebook (in a thread) and opens it
# in your browser; the call returns at once, `stop()` ends it.

# %%
explorer = cnnscope.explore(model, open_browser=False)
print(explorer)

# %%
explorer.stop()
