"""Every tuned number and every ``"auto"`` rule of the estimators, in one place.

Each constant carries one line saying which measurement chose it (files under
``benchmarks/results/``). The rule every default obeys: against the
alternative it was measured with, no simulation family's median MCC drops by
more than 0.02 and none falls behind the plain VAE. Parameter docstrings
describe behaviour; the figures live in the README and the user guide.

The ``"auto"`` rules are the functions at the end: :func:`ivae_settings` and
:func:`nica_settings` turn an estimator's parameters into the
:class:`Settings` of one fit, and the model builders read
:func:`ivae_input_noise_std`. Nothing else in the package resolves ``"auto"``.
"""

from dataclasses import dataclass, field

# ---------------------------------------------------------------- every method
#: batch_size="auto" except the flow's: min(256, max(32, n // 100)), about 100
#: optimiser steps per epoch or more (identifiability comes late in training);
#: version 0.1's choice, kept by results/ablation_knobs.txt (batch 256 vs 64)
BATCH_MIN, BATCH_MAX, BATCH_ROWS_PER_STEP = 32, 256, 100
#: max_iter="auto" is a budget of optimiser steps: the epochs below times the
#: steps per epoch the auto batch gives on large data (100, the flow's 80).
#: Below 3 200 rows (the flow: 5 120) an epoch has fewer steps, so "auto"
#: runs more epochs; every simulation family has more rows, so their fits are
#: unchanged (results/families_v030.txt), while a table of 178 rows gets the same
#: training as a large one instead of 120 steps
AUTO_STEPS_PER_EPOCH = {"default": BATCH_ROWS_PER_STEP, "flow": 80}
#: ... and at most AUTO_MAX_STEPS_FACTOR times that budget on large data, in
#: whole epochs: above about 100 000 rows (the flow: 164 000) the work stops
#: growing with the rows, and a million rows get a few epochs instead of 20
#: (results/speed_rows.txt)
AUTO_MAX_STEPS_FACTOR = 4

# ------------------------------------------------------------ the flow (NICA)
#: max_iter, learning_rate_init and n_init of method="flow": flow_tuning.txt
#: (lr 0.04 against 0.03/0.05/0.01) and paper_flow_n_init2.txt (2 restarts:
#: same medians as 3 at 0.84x the time)
FLOW_MAX_ITER, FLOW_LR, FLOW_N_INIT = 20, 4e-2, 2
#: ... FLOW_MAX_ITER is the budget of 5 sources; it grows in proportion to the
#: dimension up to twice that at 10 sources and more (a D-dimensional flow
#: has D^2 weights per layer; the likelihood gap to the true model at 10
#: sources was optimisation, not capacity): d10 0.943 (worst 0.818) -> 0.979
#: (0.845), d20 0.988 (0.949) -> 0.996 (0.982), 1.5-2x the fit time; families
#: of 5 sources unchanged (results/d10_mi40*.txt, d20_mi40.txt)
FLOW_SOURCES_PER_BUDGET, FLOW_MAX_BUDGETS = 5, 2
#: the flow's batch_size="auto": min(512, max(64, n // 80)), about 80 steps per
#: epoch (flow_tuning.txt: more steps mattered more than larger batches)
FLOW_BATCH_MIN, FLOW_BATCH_MAX, FLOW_BATCH_ROWS_PER_STEP = 64, 512, 80
#: spline blocks, bins and bound of the flow's network: flow_tuning.txt
#: (depth 3 and bound 10 lower, 16 bins within noise at more cost)
FLOW_DEPTH, SPLINE_BINS, SPLINE_BOUND = 4, 8, 5.0

# ------------------------------------------------------------------- the iVAE
#: (max_iter, learning_rate_init) of "auto" per start: paper_ivae_init.txt
#: (from the flow: 20 epochs at 0.001, a larger rate walks away from it)
IVAE_SETTINGS = {"flow": (20, 1e-3), "random": (40, 1e-2)}
#: observation-noise variance of the Gaussian decoder: ablation_knobs.txt
DECODER_VAR = 0.01
#: importance samples of score (and restart choice): selection.txt
N_IMPORTANCE = 16
#: importance samples of the training bound: iwae_training.txt (K=4 raised
#: every family's median but one, within 0.002; K=16 cost 30% more for +0.002)
N_IMPORTANCE_TRAIN = 4

# ---------------------------------------------------------- TCL and GCL (NICA)
#: max_iter, learning_rate_init, n_init of the contrastive methods (and of the
#: iVAE of NonlinearICA after a random start): version 0.1's, layers.txt
CONTRASTIVE_MAX_ITER, CONTRASTIVE_LR, CONTRASTIVE_N_INIT = 40, 1e-2, 1
#: learning rate when the invertible features start from the flow:
#: contrastive.txt (0.001 keeps the start; 0.01 walks away from it)
CONTRASTIVE_FLOW_START_LR = 1e-3

# --------------------------------------------- the flow start (skivae._start)
#: epochs of the start's short flow on square data of 5 sources
#: (paper_ivae_init.txt), grown with the dimension as the flow's own budget
#: up to twice that at 10 sources and more (version 0.9; see
#: start_flow_epochs: d10 0.810 (worst 0.773) -> 0.824 (0.815), d20 0.840
#: (0.815) -> 0.858 (0.839), 7 sources 0.905 (0.830) -> 0.942 (0.889),
#: about 1.4x the fit time at 10 and 20; TCL's and GCL's flow features too:
#: d10 TCL 0.867 -> 0.888, GCL 0.874 -> 0.894; results/start_epochs.txt), and
#: on undercomplete data, where it also models the noise directions
#: (undercomplete.txt: 20 against 10)
START_FLOW_EPOCHS, START_FLOW_EPOCHS_UNDERCOMPLETE = 10, 20
#: ... and on undercomplete data with a continuous u, whose conditional prior
#: is a network rather than a table: in 20 epochs it learned too little of
#: u's effect for the outputs to be told apart (u-information of the sources
#: 0.04-0.07 nats): cont_periodic 0.969, worst draw 0.869 behind the plain
#: VAE; with 60, 0.977 (0.960), cont_monotone unchanged at 0.977, 2.1x the
#: fit time (results/families_v030.txt, families_after_cont.txt)
START_FLOW_EPOCHS_UNDERCOMPLETE_CONTINUOUS = 60
#: undercomplete start: the flow runs on at most max(16, 2 n_components)
#: whitened principal components (all of them scored best, the cap bounds the
#: cost): undercomplete.txt
START_MAX_DIMS, START_MAX_RATIO = 16, 2
#: principal directions with less variance than this fraction of the first
#: one's are left out (collinear features make the flow's likelihood
#: degenerate): a numerical floor, tested, not tuned
START_MIN_VARIANCE = 1e-8
#: outputs whose u-information is at least this fraction of the largest are
#: the candidate sources: undercomplete_u48_more.txt (3 of 25 draws changed)
START_MIN_GAIN = 0.25
#: rows and step (in standard deviations) of the finite-difference reach of
#: the flow's outputs: cost bound (about 0.06 s), not tuned
REACH_ROWS, REACH_STEP = 2048, 0.1
#: the regression that moves a new iVAE onto the flow's sources: passes over
#: the data, bounds on its steps, batch, learning rates (networks, prior) and
#: the encoder's target log-variance: paper_ivae_init.txt; the networks' rate
#: 0.01 (version 0.8; was 0.001, which left the encoder short of the flow's
#: sources: paper_std start 0.965, regressed 0.911, fitted 0.906; at 0.01
#: 0.959 and 0.933): distill_lr.txt
DISTILL_EPOCHS, DISTILL_STEPS = 20, (200, 2000)
DISTILL_BATCH, DISTILL_LR, DISTILL_PRIOR_LR = 256, 1e-2, 1e-2
DISTILL_LOGVAR = -4.0


# ================================================================ "auto" rules
@dataclass(frozen=True)
class Settings:
    """What one fit runs with, every ``"auto"`` resolved.

    ``fitted`` holds the fitted attributes the resolution decides
    (``init_``, ``features_``); ``batch_rule`` is ``"flow"`` or
    ``"default"`` (see :func:`auto_batch_size`); ``batched_restarts``: the
    restarts train as one model with a restart axis; ``auto_max_iter``:
    ``max_iter`` was ``"auto"``, a budget of steps (see :func:`epochs`).
    """

    max_iter: int
    learning_rate_init: float
    n_init: int
    batch_rule: str = "default"
    batched_restarts: bool = False
    auto_max_iter: bool = False
    fitted: dict = field(default_factory=dict)
    #: the stopping rule's patience in epochs (see :func:`patience`; None:
    #: the estimator's ``n_iter_no_change``)
    n_iter_no_change: int | None = None


def epochs(max_iter, rule, n_train, batch_size, auto=True):
    """Epochs a fit runs: ``max_iter``, or with ``auto``, at least as many as
    give ``max_iter * AUTO_STEPS_PER_EPOCH[rule]`` optimiser steps and no more
    than give ``AUTO_MAX_STEPS_FACTOR`` times that (at least one epoch)."""
    if not auto:
        return max_iter
    per_epoch = -(-n_train // max(1, min(batch_size, n_train)))
    steps = max_iter * AUTO_STEPS_PER_EPOCH[rule]
    return capped_epochs(
        max(max_iter, -(-steps // per_epoch)), rule, n_train, batch_size
    )


def patience(n_iter_no_change, rule, n_train, batch_size, auto=True):
    """Epochs without progress before training stops: ``n_iter_no_change``,
    or with ``auto`` (``max_iter="auto"``, a budget of steps) at least as
    many as hold ``n_iter_no_change`` epochs of ``AUTO_STEPS_PER_EPOCH[rule]``
    steps. With ``batch_size="auto"``, below 3 200 training rows (the
    flow: 5 120) an epoch has fewer steps than that and "auto" runs more of
    them; counted in those short epochs, the stopping rule ended fits of a
    few hundred rows after a fraction of their schedule
    (results/small_data.txt). Larger data keep ``n_iter_no_change`` (as
    does any epoch of that many steps, whatever ``batch_size``)."""
    if not auto:
        return n_iter_no_change
    per_epoch = -(-n_train // max(1, min(batch_size, n_train)))
    steps = n_iter_no_change * AUTO_STEPS_PER_EPOCH[rule]
    return max(n_iter_no_change, -(-steps // per_epoch))


def capped_epochs(n_epochs, rule, n_train, batch_size):
    """``n_epochs``, or fewer on large data: at most as many (and at least
    one) as give ``AUTO_MAX_STEPS_FACTOR`` times the steps of ``n_epochs``
    epochs of ``AUTO_STEPS_PER_EPOCH[rule]`` steps. The cap of
    :func:`epochs`, also applied to the iVAE's short flow start."""
    per_epoch = -(-n_train // max(1, min(batch_size, n_train)))
    most = -(
        -AUTO_MAX_STEPS_FACTOR * n_epochs * AUTO_STEPS_PER_EPOCH[rule] // per_epoch
    )
    return min(n_epochs, max(1, most))


def auto_batch_size(rule, n_train):
    """The batch size ``batch_size="auto"`` stands for on ``n_train`` rows."""
    if rule == "flow":
        lo, hi, rows = FLOW_BATCH_MIN, FLOW_BATCH_MAX, FLOW_BATCH_ROWS_PER_STEP
    else:
        lo, hi, rows = BATCH_MIN, BATCH_MAX, BATCH_ROWS_PER_STEP
    return int(min(hi, max(lo, n_train // rows)))


def _auto(value, default):
    return default if value == "auto" else value


def flow_budgets(n_features):
    """How many 5-source budgets a flow on ``n_features`` sources gets:
    ``clip(n_features / 5, 1, 2)``."""
    return min(FLOW_MAX_BUDGETS, max(1.0, n_features / FLOW_SOURCES_PER_BUDGET))


def flow_epochs(n_features):
    """Epochs of ``max_iter="auto"`` of the flow on ``n_features`` sources:
    ``FLOW_MAX_ITER * clip(n_features / 5, 1, 2)``, rounded."""
    return int(round(FLOW_MAX_ITER * flow_budgets(n_features)))


def start_flow_epochs(n_features):
    """Epochs of the short flow that starts the iVAE, and gives TCL and GCL
    their invertible features, on square data with ``n_features`` features:
    ``START_FLOW_EPOCHS`` grown with the dimension as the flow's own budget,
    ``START_FLOW_EPOCHS * clip(n_features / 5, 1, 2)``, rounded
    (results/start_epochs.txt: on d10 the iVAE 0.810 -> 0.824, TCL 0.867 ->
    0.888, GCL 0.874 -> 0.894)."""
    return int(round(START_FLOW_EPOCHS * flow_budgets(n_features)))


def ivae_init(init, *, u_type, likelihood, undercomplete=False, ar_order=0):
    """``init_`` of an iVAE: ``"flow"`` or ``"random"``; ``"auto"`` starts
    from the flow when ``u`` is given and the data are real-valued (not
    Bernoulli) (paper_ivae_init.txt, undercomplete.txt, families_v030.txt).
    An autoregressive model (``ar_order > 0``) on square data also starts
    from the (autoregressive) flow without ``u``: the flow then identifies
    stationary sources by their dynamics (ordered_time_ar.txt)."""
    identifies = u_type is not None or (ar_order > 0 and not undercomplete)
    if init == "random":
        return "random"
    if init == "flow":
        if not identifies:
            raise ValueError(
                "init='flow' starts from nonlinear ICA, which needs the "
                "auxiliary variable u (or, on square data, ar_order > 0); pass u "
                "or use init='random'."
            )
        if likelihood == "bernoulli":
            raise ValueError(
                "init='flow' needs real-valued data (likelihood='gaussian' or "
                "'laplace'): a flow has no density on binary data. Use "
                "init='random'."
            )
        return "flow"
    return "flow" if identifies and likelihood != "bernoulli" else "random"


def ivae_input_noise_std(input_noise, likelihood, decoder_var, init_):
    """Standard deviation of the training noise added to the standardised X.

    ``"auto"``: ``sqrt(decoder_var)`` for a fixed-variance Gaussian decoder
    after a random start (paper setting 0.778 -> 0.808 median), none after
    the flow start (iwae_training.txt: it lowered every family's median).
    """
    if input_noise == "auto":
        fixed_gaussian = likelihood == "gaussian" and decoder_var != "learn"
        use = fixed_gaussian and init_ != "flow"
        return float(decoder_var) ** 0.5 if use else 0.0
    if likelihood == "bernoulli" and input_noise > 0:
        raise ValueError(
            "input_noise > 0 needs real-valued data (likelihood='gaussian' or "
            "'laplace'): binary data cannot "
            "take Gaussian noise. Use input_noise=0 or 'auto'."
        )
    return float(input_noise) ** 0.5


def ivae_settings(est, *, u_type, n_features, init_=None):
    """:class:`Settings` of an :class:`~skivae.IdentifiableVAE` fit.

    ``init_``: the start of the model a warm start continues (None: resolve
    ``init``).
    """
    if init_ is None:
        init_ = ivae_init(
            est.init,
            u_type=u_type,
            likelihood=est.likelihood,
            undercomplete=_undercomplete(est.n_components, n_features),
            ar_order=est.ar_order,
        )
    # An impossible combination raises before any training.
    ivae_input_noise_std(est.input_noise, est.likelihood, est.decoder_var, init_)
    max_iter, lr = IVAE_SETTINGS[init_]
    return Settings(
        max_iter=_auto(est.max_iter, max_iter),
        learning_rate_init=_auto(est.learning_rate_init, lr),
        n_init=est.n_init,
        auto_max_iter=est.max_iter == "auto",
        fitted={"init_": init_},
    )


def _undercomplete(n_components, n_features):
    return n_components is not None and n_components < n_features


def nica_features(method, features, n_components, n_features):
    """``features_`` of a :class:`~skivae.NonlinearICA` fit (None unless TCL or
    GCL): the invertible network on square data (contrastive.txt: signed
    sources 0.96-0.98 against 0.04-0.40 with the MLP), the MLP otherwise."""
    if method not in ("tcl", "gcl"):
        return None
    square = n_components in (None, n_features)
    if features == "flow" and not square:
        raise ValueError(
            f"features='flow' is invertible, so it needs square data: "
            f"n_components={n_components} must equal n_features={n_features} (or "
            "be None). Use features='mlp' for fewer sources than features."
        )
    if features == "flow" or (features == "auto" and square):
        return "flow"
    return "mlp"


def nica_init(method, init, features_, *, u_type=None, undercomplete=False, ar_order=0):
    """``init_`` of a :class:`~skivae.NonlinearICA` fit: the iVAE starts as
    :func:`ivae_init` says (its Gaussian decoder), the contrastive methods on
    the invertible features from a short flow unless ``init="random"``; the
    MLP features cannot; the flow has no start."""
    if method == "ivae":
        return ivae_init(
            init,
            u_type=u_type,
            likelihood="gaussian",
            undercomplete=undercomplete,
            ar_order=ar_order,
        )
    if features_ == "flow":
        return "random" if init == "random" else "flow"
    if features_ is None:  # method="flow"
        return None
    if init == "flow":
        raise ValueError(
            f"init='flow' starts the features of method={method!r} from a flow, "
            "which needs the invertible features: use features='flow' (square "
            "data: n_components equal to n_features), or init='auto' / "
            "init='random' with the MLP features."
        )
    return "random"


def nica_settings(est, *, n_features, u_type, fitted=None):
    """:class:`Settings` of a :class:`~skivae.NonlinearICA` fit.

    ``fitted``: the ``init_`` and ``features_`` of the model a warm start
    continues (None: resolve them).
    """
    method = est.method
    if fitted is None:
        features_ = nica_features(method, est.features, est.n_components, n_features)
        init_ = nica_init(
            method,
            est.init,
            features_,
            u_type=u_type,
            undercomplete=_undercomplete(est.n_components, n_features),
            ar_order=est.ar_order,
        )
        fitted = {"features_": features_, "init_": init_}
    init_ = fitted["init_"]
    if method == "flow":
        auto = (flow_epochs(n_features), FLOW_LR, FLOW_N_INIT)
    elif method == "ivae":
        auto = (*IVAE_SETTINGS[init_], CONTRASTIVE_N_INIT)
    elif init_ == "flow":  # TCL or GCL on the invertible features
        auto = (CONTRASTIVE_MAX_ITER, CONTRASTIVE_FLOW_START_LR, CONTRASTIVE_N_INIT)
    else:
        auto = (CONTRASTIVE_MAX_ITER, CONTRASTIVE_LR, CONTRASTIVE_N_INIT)
    return Settings(
        max_iter=_auto(est.max_iter, auto[0]),
        learning_rate_init=_auto(est.learning_rate_init, auto[1]),
        n_init=_auto(est.n_init, auto[2]),
        batch_rule="flow" if method == "flow" else "default",
        batched_restarts=method == "flow",
        auto_max_iter=est.max_iter == "auto",
        fitted=dict(fitted),
    )
