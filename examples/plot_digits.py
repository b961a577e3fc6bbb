"""
=======================================================
An iVAE of handwritten digits, conditioned on the class
=======================================================

scikit-learn ships a small set of 8 x 8 images of handwritten digits
(:func:`~sklearn.datasets.load_digits`, no download). We fit an
:class:`~skivae.IdentifiableVAE` with the digit's class as the auxiliary
variable ``u``: the prior of the latents, a Gaussian whose mean and variance
depend on ``u``, then has one component per class, and the decoder maps
latents to images.

Two uses of the fitted generative model follow: drawing new digits of a
chosen class with :meth:`~skivae.IdentifiableVAE.sample`, and walking along
one latent at a time with :meth:`~skivae.IdentifiableVAE.inverse_transform`
to see what each latent encodes.
"""

# %%
# Fit the model
# -------------
# Pixel intensities run from 0 to 16; scaled to [0, 1], they suit a
# Bernoulli decoder (``likelihood="bernoulli"``), which reads each pixel as
# the probability of ink: most pixels are nearly always blank, which a
# Gaussian decoder on standardised pixels handles badly. With ten
# classes and the default Gaussian prior (``k = 2`` statistics per latent),
# the identifiability condition allows up to four latents
# (``n * k + 1 = 9 <= 10`` distinct values of ``u``).
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skivae import IdentifiableVAE
from skivae.plotting import plot_latents, plot_loss_curve

torch.set_num_threads(1)  # small networks run fastest on one thread

digits = load_digits()
X = digits.data / 16.0
u = digits.target
print(f"X: {X.shape}, classes: {np.unique(u)}")

with warnings.catch_warnings():
    # 60 epochs keep this example fast; the loss is nearly flat by then.
    warnings.simplefilter("ignore", ConvergenceWarning)
    ivae = IdentifiableVAE(4, likelihood="bernoulli", max_iter=60, random_state=0)
    ivae.fit(X, u)
ax = plot_loss_curve(ivae)

# %%
# The latents, coloured by class
# ------------------------------
# ``transform`` needs no label: the encoder sees only the image. The prior's
# class-dependent means pull the classes apart in latent space.
Z = ivae.transform(X)
ax = plot_latents(Z, u, components=(0, 1), s=6)

# %%
# New digits of each class
# ------------------------
# ``sample(u=...)`` draws latents from the prior of the given classes and
# decodes them. ``sample`` returns the observation draws (here pixels that
# are 0 or 1) and the latents; we show the decoder's mean for the drawn
# latents instead, ``inverse_transform(Z_new)``: the probability of ink in
# each pixel.
n_per_class = 8
_, Z_new = ivae.sample(u=np.repeat(np.arange(10), n_per_class), random_state=0)
images = ivae.inverse_transform(Z_new).reshape(10, n_per_class, 8, 8)

fig, axes = plt.subplots(10, n_per_class, figsize=(n_per_class * 0.8, 8.4))
for digit in range(10):
    for j in range(n_per_class):
        ax = axes[digit, j]
        ax.imshow(images[digit, j], cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[digit, 0].set_ylabel(f"u = {digit}", rotation=0, labelpad=18)
fig.suptitle("Digits drawn from p(x | u) for each class u")
fig.tight_layout()

# %%
# Latent traversals
# -----------------
# Start from the average latent of all images and move one latent at a time
# from its 2nd to its 98th percentile, keeping the others fixed. Each row
# decodes such a walk: it shows which change of the image that latent
# controls (thickness, slant, a shift between digit shapes).
n_steps = 9
center = Z.mean(axis=0)
fig, axes = plt.subplots(
    ivae.n_components_, n_steps, figsize=(n_steps * 0.8, ivae.n_components_ * 0.95)
)
for i in range(ivae.n_components_):
    grid = np.tile(center, (n_steps, 1))
    grid[:, i] = np.linspace(*np.percentile(Z[:, i], [2, 98]), n_steps)
    walk = ivae.inverse_transform(grid).reshape(n_steps, 8, 8)
    for j in range(n_steps):
        ax = axes[i, j]
        ax.imshow(walk[j], cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[i, 0].set_ylabel(f"latent {i}", rotation=0, labelpad=24)
fig.suptitle("Decoded walks along each latent")
fig.tight_layout()
plt.show()
