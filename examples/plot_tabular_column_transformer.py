"""
==============================================================
Tabular data: an iVAE inside a ColumnTransformer
==============================================================

Real data often come as a table with columns of several kinds. Here a
:class:`~sklearn.compose.ColumnTransformer` sends the numeric measurements to
an :class:`~skivae.IdentifiableVAE`, one-hot encodes a categorical column and
drops an identifier. The auxiliary variable ``u`` is the experimental
condition of each row; it is passed as ``y``, so the same call also trains a
:class:`~sklearn.linear_model.LogisticRegression` that predicts the condition
from the learned features. With ``set_output(transform="pandas")`` every step
hands named columns to the next.
"""

# %%
# A table of measurements
# -----------------------
# Four measurements per row are a nonlinear mixture of four sources whose
# variances depend on the condition (a simulation in which we know the truth).
# Each row also records the site where it was measured and a patient id.
import io
import warnings

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import skivae
from skivae import IdentifiableVAE
from skivae.datasets import make_nonstationary_sources
from skivae.metrics import mean_corr_coef

warnings.simplefilter("ignore", ConvergenceWarning)  # short training on purpose

X, segment, S = make_nonstationary_sources(
    n_segments=8, n_per_segment=150, n_sources=4, n_layers=2, random_state=0
)
rng = np.random.RandomState(0)
df = pd.DataFrame(X, columns=["glucose", "insulin", "cortisol", "heart_rate"])
df["site"] = rng.choice(["Lyon", "Oslo", "Turin"], size=len(df))
df["patient"] = [f"P{i:04d}" for i in range(len(df))]
condition = np.array([f"condition_{k}" for k in segment])
print(df.head())

# %%
# The column transformer
# ----------------------
# ``fit(df, condition)`` passes ``condition`` to every transformer: the iVAE
# takes it as ``u``, the encoder ignores it. Output columns are named after
# the transformer (``latent__``) and the estimator's prefix (``ivae0``, ...).
numeric = ["glucose", "insulin", "cortisol", "heart_rate"]
ivae_step = IdentifiableVAE(4, prior="gaussian_var", max_iter=15, random_state=0)
columns = ColumnTransformer(
    [
        (
            "latent",
            ivae_step,
            numeric,
        ),
        ("site", OneHotEncoder(sparse_output=False), ["site"]),
    ],
    remainder="drop",  # the patient id carries no information
).set_output(transform="pandas")
features = columns.fit_transform(df, condition)
print(features.head())

ivae = columns.named_transformers_["latent"]
print(
    f"MCC of the latents with the true sources: "
    f"{mean_corr_coef(S, ivae.transform(df[numeric])):.3f}"
)

# %%
# A classifier on the learned features
# ------------------------------------
# In a Pipeline, ``y`` is both the iVAE's ``u`` and the classifier's target.
# The conditions differ in the sources' variances, so the classifier gets
# squared features (after standardisation): on the latents these estimate
# the sources' variances. We compare with the same classifier on the squared
# standardised raw measurements, which mix the sources. A single row says
# little about a variance, so both stay far from perfect; the point here is
# the plumbing, not the accuracy. ``prior="gaussian_var"``
# (u modulates only the variances: 1 statistic per component) keeps 8
# conditions enough for identifiability of 4 components.
cv = StratifiedKFold(3, shuffle=True, random_state=0)
on_latents = make_pipeline(
    ColumnTransformer(
        [
            (
                "latent",
                ivae_step,
                numeric,
            ),
            ("site", OneHotEncoder(sparse_output=False), ["site"]),
        ]
    ),
    StandardScaler(),
    FunctionTransformer(np.square),
    LogisticRegression(max_iter=1000),
)
on_raw = make_pipeline(
    ColumnTransformer([("raw", StandardScaler(), numeric)]),
    FunctionTransformer(np.square),
    LogisticRegression(max_iter=1000),
)
print(f"chance level: {1 / len(set(condition)):.3f}")
for name, model in (("iVAE latents", on_latents), ("raw measurements", on_raw)):
    acc = cross_val_score(model, df, condition, cv=cv)
    print(f"accuracy on {name:16s}: {acc.mean():.3f} +- {acc.std():.3f}")

# %%
# Keeping the fitted model
# ------------------------
# ``save`` writes the iVAE to one file without pickle; ``skivae.load`` gives
# back an estimator with identical output (see :ref:`persistence`).
buffer = io.BytesIO()
ivae.save(buffer)
buffer.seek(0)
same = skivae.load(buffer)
print(
    "identical after reload:",
    np.array_equal(same.transform(df[numeric]), ivae.transform(df[numeric])),
)
