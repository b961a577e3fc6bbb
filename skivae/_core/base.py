"""The interface every skivae model implements.

An estimator builds one :class:`LatentModel`, hands it to
:func:`skivae._core.training.train` and afterwards calls the same methods for
inference. A new method is therefore one subclass of :class:`LatentModel` here
plus one branch of the estimator's ``_build_module``.
"""

from abc import ABCMeta, abstractmethod

from torch import nn


class LatentModel(nn.Module, metaclass=ABCMeta):
    """A torch model that learns latent features of ``x`` with auxiliary ``u``.

    ``x`` is a float tensor of shape ``(B, n_features)`` (already standardised
    by the estimator). ``u`` is a LongTensor of category codes of shape
    ``(B,)``, a float tensor of shape ``(B, n_aux)``, or ``None`` for a model
    fitted without ``u``.

    Required methods
    ----------------
    loss(x, u) -> Tensor of shape (B,)
        Per-sample training objective, lower is better. Randomness used only
        in training (reparameterisation, input noise, shuffled negatives,
        annealing) lives here and draws from torch's global RNG, which the
        estimator seeds for the whole fit.
    score_samples(x, u) -> Tensor of shape (B,)
        Per-sample held-out objective, higher is better. It must be
        deterministic and each row's value must depend on that row only (not
        on the other rows of the batch), so that early stopping, the choice
        between restarts and ``score`` agree however the rows are batched.
        Fixed draws it needs are made at construction from a seed and kept as
        buffers. ``u`` may be ``None`` where the model can score without it
        (the iVAE uses the marginal prior over the training values of ``u``);
        other models raise ``ValueError``.
    features(x) -> Tensor of shape (B, n_components)
        What the estimator's ``transform`` returns, before any
        post-processing (standardisation, a linear ICA).

    Optional methods, called by the estimators only where they exist:
    ``inverse(z)`` maps features back to (standardised) observations, and
    ``sample(u, n_samples)`` draws ``(x, z)`` from the generative model.
    A model that trains ``R`` restarts at once as one batched model (the
    flow) has ``restart_score_samples(x, u)`` and ``restart_loss(x, u)``,
    both of shape ``(R, B)`` (``loss`` is the mean of the latter over
    restarts), and ``keep(r)``, which keeps restart ``r`` in place and
    returns the model; the estimator asks for it through its settings
    (``batched_restarts``).
    A model that can start at known latents ``z`` (the iVAE, started from
    the flow) has ``latent_regression_loss(x, u, z, ...)``, a per-row loss
    for :func:`~skivae._core.training.fit_to_latents`.

    Attributes
    ----------
    log_density : bool
        True when ``score_samples`` is a log-density of ``x`` (or a bound on
        one); the estimators then add the log-Jacobian of their
        standardisation of ``X`` so that scores refer to the original scale.
    compile_pays : bool
        Whether :func:`torch.compile` of ``loss`` was measured to speed up
        training on CPU (``compile=True`` compiles only such models; see
        ``benchmarks/bench_compile.py``). False by default.
    """

    compile_pays = False

    log_density = False

    @abstractmethod
    def loss(self, x, u):
        """Per-sample training loss, shape ``(B,)`` (lower is better)."""

    @abstractmethod
    def score_samples(self, x, u):
        """Deterministic per-sample held-out objective, shape ``(B,)``."""

    @abstractmethod
    def features(self, x):
        """Latent features of ``x``, shape ``(B, n_components)``."""

    def _register_aux_support(self, support, log_weights):
        """Keep the training values of ``u`` and their log-weights as buffers.

        ``support`` holds category codes ``(C,)`` or covariate rows
        ``(C, n_aux)``; ``log_weights`` their log-probabilities ``(C,)`` under
        the training distribution of ``u``. Models that score against the
        marginal of ``u`` read them as ``self.aux_support`` and
        ``self.aux_log_weights`` (``None`` when not given).
        """
        self.register_buffer("aux_support", support)
        self.register_buffer("aux_log_weights", log_weights)
