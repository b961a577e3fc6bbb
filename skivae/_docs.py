"""Numpydoc text shared by the estimators' docstrings.

A class docstring includes the shared parameters and attributes with the
lines ``%(shared_parameters)s`` and ``%(shared_attributes)s``;
:func:`fill_docstring` replaces them when the class is created.
"""

import re
import textwrap

#: numpydoc entries of the parameters every estimator shares; a class
#: docstring includes them with a line ``%(shared_parameters)s``.
_SHARED_PARAMETERS = """\
u_type : {"auto", "categorical", "continuous"}, default="auto"
    How to read ``u``. With ``"auto"``, integer, boolean and string labels
    are categorical (a lookup table gives the model's parameters) and
    floats are continuous (an MLP gives them). Several numeric columns
    (covariates, or one-hot codes) are continuous. A float array holding
    only whole numbers is read as continuous with a warning.

aux_transformer : scikit-learn transformer or None, default=None
    Applied to ``u`` inside the estimator: a clone is fitted on the
    training ``u`` in :meth:`fit` and applied again wherever ``u`` is
    given (``score``, ``score_samples``, ``sample``, ``predict_latent``),
    so a saved model keeps it. Its output is read as continuous covariates
    (unless ``u_type`` says otherwise). Use it to expand coordinates or
    times into smooth bases, e.g. ``SplineTransformer(n_knots=6)`` on 2-D
    locations, or ``SplineTransformer(extrapolation="periodic")`` on the
    day of the year; its parameters are searchable as
    ``aux_transformer__n_knots``. :meth:`save` stores the transformers
    of ``sklearn.preprocessing`` (not ``FunctionTransformer``: a function
    is code), those of ``sklearn.kernel_approximation`` (with a named
    kernel) and Pipelines and FeatureUnions of them (see :ref:`ordered`).

    .. versionadded:: 0.6

ar_order : int, default=0
    Number R of previous rows the latent prior remembers, for rows in time
    order (pass ``groups`` to :meth:`fit` to mark independent sequences).
    With ``R > 0`` the prior of row ``t`` is conditionally factorial with
    location ``mu(u_t) + sum_r gamma_r(u_t) (z_{t-r} - mu(u_{t-r}))`` and
    scale ``sigma(u_t)``, ``|gamma| < 1`` learned (constants without
    ``u``). The previous latents are the flow's ``g(x_{t-r})`` (its
    likelihood stays exact) or the iVAE encoder's posterior means. ``0``:
    rows are exchangeable given ``u``. Only ``method="flow"`` and
    ``"ivae"``. See :ref:`ordered`.

    .. versionadded:: 0.6

hidden_layer_sizes : tuple of int, default=(64, 64)
    Widths of the hidden layers of the network that computes the latents
    (encoder or feature extractor). The iVAE's decoder mirrors them, and
    its prior for continuous ``u`` uses the first one.

activation : {"leaky_relu", "relu", "elu", "tanh", "gelu", "silu", \
"xtanh"}, default="leaky_relu"
    Hidden-layer non-linearity.

max_iter : int, default=40
    Maximum number of epochs.

batch_size : int or "auto", default="auto"
    Mini-batch size; ``"auto"`` uses ``min(256, max(32, n_samples // 100))``
    (about 100 optimiser steps per epoch or more).

learning_rate_init : float, default=1e-2
    Adam's initial learning rate, decayed by a cosine schedule over
    ``max_iter`` epochs.

early_stopping : bool, default=False
    Hold out ``validation_fraction`` of the data, stop when its held-out
    objective (the iVAE's ``score``: its importance-weighted bound, see
    ``n_importance``) stops improving and restore the best weights.

validation_fraction : float, default=0.1
    Share of the data held out when ``early_stopping=True``.

n_iter_no_change : int, default=10
    Epochs without an improvement of at least ``tol`` (relative) before
    training stops. With ``max_iter="auto"`` these are epochs of the size
    its budget counts: where an epoch has fewer than 100 optimiser steps
    (the flow: 80), small data, the rule waits ``n_iter_no_change`` times
    100 (80) steps; ``training_settings_["n_iter_no_change"]`` gives the
    epochs that is.

    .. versionchanged:: 0.7
       Counted in epochs of the ``"auto"`` budget's size on small data.

tol : float, default=1e-4
    Relative improvement of the monitored loss that counts as progress.

n_init : int, default=1
    Number of restarts from different initialisations; the one with the
    best final held-out objective (on the training data, or on the
    validation split with ``early_stopping=True``) is kept, like
    ``GaussianMixture``'s ``n_init``; for the iVAE that is its ``score``,
    the importance-weighted bound with ``n_importance`` samples.

warm_start : bool, default=False
    When True and the estimator is already fitted, :meth:`fit` continues
    training the fitted model (``module_``) on the data it is given instead
    of starting from a new initialisation, like ``MLPRegressor``: it keeps
    how ``u`` is read (``aux_encoder_``) and the standardisation of ``X``,
    ignores ``n_init``, runs up to ``max_iter`` more epochs (with a fresh
    optimiser and learning-rate schedule), extends ``loss_curve_`` and
    ``validation_scores_`` and adds to ``n_iter_``. The data must have the
    same features and the same categories of ``u`` (or the same number of
    covariates) as the fitted model, and the parameters that shape the
    model (``n_components``, ``hidden_layer_sizes``, the prior, ...) must
    not change; otherwise ``fit`` raises a ``ValueError`` and leaves the
    fitted model as it was.

    .. versionadded:: 0.2

device : str, default="cpu"
    ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``. A model
    fitted on a GPU is moved back to the CPU; unpickled where that device
    is missing, it runs its inference on the CPU.

n_threads : int or None, default=1
    Torch CPU threads used by ``fit`` and inference (restored afterwards).
    Models of this size run fastest on one thread, and one thread per
    process keeps parallel searches (``n_jobs``) from oversubscribing the
    cores; ``None`` keeps torch's current setting.

compile : bool, default=False
    Train the flow through :func:`torch.compile`: the flow of
    ``NonlinearICA(method="flow")`` and the short flow that starts the iVAE
    (and TCL/GCL's flow features). It pays where many fits of the same
    shapes run in one process, as in a search: the first fit spends 30-60 s
    compiling, later fits reuse the graph. Measured on one thread per fit,
    later fits on 4 families: the flow 4.4-6.6 s against 13.3-15.8 s
    eagerly, the default iVAE 13.8 s against 19.5 s, at the same median MCC
    (``benchmarks/bench_compile.py``). torch caches the compiled code on
    disk, so a later process on the same machine starts warm: its first
    flow fit took 8.6-10.9 s. The iVAE's own loss stays eager: it
    ran slower compiled. Results are reproducible for a ``random_state``
    but differ from the eager ones in the last bits, so trajectories part.
    Where compiling fails (no C++ compiler, say) ``fit`` trains eagerly with
    a :class:`~skivae.CompileFallbackWarning`.

    .. versionadded:: 0.6

random_state : int, RandomState instance or None, default=None
    Seeds everything ``fit`` draws: initialisation, mini-batch order,
    training noise, the validation split, restarts (and TCL's FastICA).
    Same seed, same data, CPU: identical results.

verbose : int, default=0
    Show a progress bar with the current loss."""

#: numpydoc entries of the fitted attributes every estimator shares
#: (``%(shared_attributes)s``).
_SHARED_ATTRIBUTES = """\
n_components_ : int
    Number of latent components.
module_ : LatentModel
    The trained torch model (on CPU, in eval mode).
loss_curve_ : list of float
    Mean training loss per epoch, over all the fits of ``warm_start=True``:
    minus the training objective (for the iVAE, its importance-weighted
    bound with ``n_importance_train`` draws; the ELBO with one).
best_loss_ : float
    Lowest value of ``loss_curve_``.
validation_scores_ : list of float or None
    Mean held-out objective per epoch (``early_stopping=True``), else None.
best_validation_score_ : float or None
    Highest value of ``validation_scores_``.

    The flow trains its ``n_init`` restarts as one batched model:
    ``loss_curve_`` and ``validation_scores_`` are the kept restart's own
    curves, but early stopping watches (and restores the epoch of) the
    mean over the restarts, and every restart runs the same epochs; the
    restarts' final held-out scores are in ``restart_scores_``.
n_iter_ : int
    Number of epochs run (summed over the fits of ``warm_start=True``).
training_settings_ : dict
    What the last fit ran with, ``"auto"`` resolved: ``max_iter``,
    ``learning_rate_init``, ``n_init``, ``batch_size`` and the stopping
    rule's ``n_iter_no_change`` (in epochs).
restart_scores_ : ndarray of shape (n_init,)
    Final held-out objective of each restart of the last fit, higher is
    better (minus the mean loss of ``score_samples`` on the standardised
    validation split, or on the training data without one; NaN for a
    restart that diverged). The best one is kept.
aux_encoder_ : object or None
    How ``u`` is read, fitted on the training ``u`` and used again by
    ``score`` and ``sample`` (None when fitted without ``u``).
u_type_ : {"categorical", "continuous"} or None
    How ``u`` was read (None: fitted without ``u``).
aux_classes_ : ndarray or None
    Categories of a categorical ``u``.
n_aux_ : int
    Number of categories, or of continuous covariates, of ``u``.
device_ : torch.device
    Device used for training.
masked_ : bool
    Whether the training ``X`` had missing cells (NaN). Only such a model
    (an iVAE) transforms and scores rows with missing cells; see
    :ref:`missing`.

    .. versionadded:: 0.5
n_features_in_ : int
    Number of features seen during :meth:`fit`.
feature_names_in_ : ndarray of shape (`n_features_in_`,)
    Names of features seen during :meth:`fit` (only when ``X`` has string
    column names)."""


#: numpydoc entries of ``predict_latent``'s parameters, shared by the
#: estimators; a method docstring includes them with
#: ``%(predict_latent_parameters)s``.
_PREDICT_LATENT_PARAMETERS = """\
u : array-like of shape (n_samples,) or (n_samples, n_aux), or scalar
    Values of the auxiliary variable, read like the training ``u``; a
    single value (a label, or a number when ``u`` has one covariate)
    gives one row (None only for a forecast from ``past`` of a model
    without ``u``: one row).
return_std : bool, default=False
    Also return the prior's standard deviation of each latent.
past : array-like of shape (n_past, n_features), default=None
    With ``ar_order = R > 0``: the last rows of a sequence, in time
    order (at least ``R``). The prediction is then the one-step
    forecast of the next row's latents given them: the prior's
    location shifted by the learned autoregression and the
    innovation's scale. Without it (and with ``R > 0``) the
    prediction is for a row whose past is at its mean.
u_past : array-like of shape (n_past,) or (n_past, n_aux), default=None
    The ``u`` of the rows of ``past`` (needed when the model has
    ``u``)."""


#: numpydoc entry of ``sample``'s ``groups`` (``%(sample_groups)s``).
_SAMPLE_GROUPS = """\
groups : array-like of shape (n_samples,), default=None
    With ``ar_order > 0`` the rows are drawn as sequences, in time
    order: the rows of one label of ``groups`` form one sequence (labels
    as in :meth:`fit`; ``n_samples`` is then ``len(groups)`` when ``u`` is
    not given), and without ``groups`` all rows form one sequence. Each
    sequence starts from a past at its mean. A model with ``u`` draws
    sequences at given ``u`` only (one value per row). Ignored with
    ``ar_order=0``.

    .. versionadded:: 0.6"""


#: numpydoc entry of ``score``'s ``sample_weight`` (``%(score_sample_weight)s``).
_SCORE_SAMPLE_WEIGHT = """\
sample_weight : array-like of shape (n_samples,), default=None
    Non-negative weights of the rows in the mean (None: equal weights).
    A Pipeline scored under scikit-learn's metadata routing passes it.

    .. versionadded:: 0.6"""


def fill_docstring(doc, skip=()):
    """Replace ``%(shared_parameters)s`` / ``%(shared_attributes)s`` /
    ``%(predict_latent_parameters)s`` lines.

    Shared parameters named in ``skip`` (those a subclass redefines and
    documents itself) are left out.
    """
    entries = _SHARED_PARAMETERS.split("\n\n")
    params = "\n\n".join(e for e in entries if e.split(" :")[0] not in skip)
    for key, text in (
        ("shared_parameters", params),
        ("shared_attributes", _SHARED_ATTRIBUTES),
        ("predict_latent_parameters", _PREDICT_LATENT_PARAMETERS),
        ("sample_groups", _SAMPLE_GROUPS),
        ("score_sample_weight", _SCORE_SAMPLE_WEIGHT),
    ):
        doc = re.sub(
            rf"^( *)%\({key}\)s$",
            lambda m, text=text: textwrap.indent(text, m.group(1)),
            doc,
            flags=re.MULTILINE,
        )
    return doc
