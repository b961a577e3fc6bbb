"""Among scikit-learn tools: pipelines, columns, searches, joblib and Dask."""

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skivae import IdentifiableVAE, NonlinearICA
from skivae.datasets import make_nonstationary_sources
from skivae.metrics import mcc_scorer, mean_corr_coef

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore::skivae.IdentifiabilityWarning"),
]

FAST = dict(max_iter=2, hidden_layer_sizes=(8,), batch_size=32, random_state=0)


@pytest.fixture(scope="module")
def sim():
    X, u, S = make_nonstationary_sources(6, 30, 3, n_layers=2, random_state=0)
    return X, u, S


@pytest.fixture(scope="module")
def table(sim):
    """A DataFrame with three numeric measurements, a site and an id column."""
    X, u, _ = sim
    rng = np.random.RandomState(0)
    df = pd.DataFrame(X, columns=["height", "weight", "pressure"])
    df["site"] = rng.choice(["north", "south"], size=len(df))
    df["patient"] = [f"p{i}" for i in range(len(df))]
    return df, np.array([f"condition{k % 3}" for k in u])


# ------------------------------------------------------------------- pipelines
def test_make_pipeline_passes_u_to_the_estimator(sim):
    X, u, _ = sim
    pipe = make_pipeline(StandardScaler(), IdentifiableVAE(2, **FAST)).fit(X, u)
    Z = pipe.transform(X)
    direct = IdentifiableVAE(2, **FAST).fit(StandardScaler().fit_transform(X), u)
    assert_array_equal(Z, direct.transform(StandardScaler().fit_transform(X)))
    assert pipe[-1].aux_encoder_ is not None  # fitted with u, not as a plain VAE
    assert_array_equal(pipe.get_feature_names_out(), ["ivae0", "ivae1"])


def _column_transformer(estimator):
    return ColumnTransformer(
        [
            ("latent", estimator, ["height", "weight", "pressure"]),
            ("site", OneHotEncoder(sparse_output=False), ["site"]),
        ],
        remainder="drop",  # the patient id
    )


@pytest.mark.parametrize(
    "estimator, prefix",
    [
        (IdentifiableVAE(2, **FAST), "ivae"),
        (NonlinearICA(method="gcl", **FAST), "nica"),
    ],
)
def test_column_transformer_on_mixed_dataframe(table, estimator, prefix):
    df, u = table
    ct = _column_transformer(estimator).set_output(transform="pandas")
    out = ct.fit_transform(df, u)
    n = estimator.n_components or 3
    expected = [f"latent__{prefix}{i}" for i in range(n)] + [
        "site__site_north",
        "site__site_south",
    ]
    assert list(out.columns) == expected
    fitted = ct.named_transformers_["latent"]
    assert_array_equal(fitted.feature_names_in_, ["height", "weight", "pressure"])
    assert fitted.aux_classes_.tolist() == ["condition0", "condition1", "condition2"]
    assert_allclose(out.iloc[:, :n].to_numpy(), fitted.transform(df.iloc[:, :3]))
    assert_array_equal(out["site__site_north"], (df["site"] == "north").astype(float))


def test_downstream_classifier_consumes_named_features(table):
    df, u = table
    pipe = make_pipeline(
        _column_transformer(IdentifiableVAE(2, **FAST)), LogisticRegression()
    ).set_output(transform="pandas")
    pipe.fit(df, u)  # u: the iVAE's auxiliary variable and the classifier's target
    clf = pipe[-1]
    assert list(clf.feature_names_in_) == [
        "latent__ivae0",
        "latent__ivae1",
        "site__site_north",
        "site__site_south",
    ]
    assert set(pipe.predict(df)) <= set(u)
    assert 0 <= pipe.score(df, u) <= 1


def test_polars_output(table):
    pl = pytest.importorskip("polars")
    df, u = table
    est = NonlinearICA(method="gcl", **FAST).set_output(transform="polars")
    out = est.fit(df[["height", "weight", "pressure"]], u).transform(
        df[["height", "weight", "pressure"]]
    )
    assert isinstance(out, pl.DataFrame)
    assert out.columns == ["nica0", "nica1", "nica2"]
    if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 7):
        pytest.skip(
            "scikit-learn 1.6's ColumnTransformer rejects the polars frames of "
            "recent polars releases ('should be 2D'); works from 1.7 on"
        )
    ct = _column_transformer(IdentifiableVAE(2, **FAST)).set_output(transform="polars")
    out = ct.fit_transform(df, u)
    assert isinstance(out, pl.DataFrame)
    assert out.columns[:2] == ["latent__ivae0", "latent__ivae1"]
    assert_allclose(
        out.select(out.columns[:2]).to_numpy(),
        ct.named_transformers_["latent"].transform(df.iloc[:, :3]),
    )


# ---------------------------------------------------------------------- search
GRID = {
    "hidden_layer_sizes": [(4,), (8,)],
    "learning_rate_init": [1e-2],
    "n_components": [2, 3],
    "prior": ["gaussian", "laplace"],
}
CV = KFold(2, shuffle=True, random_state=0)


def test_grid_search_default_scoring_is_held_out_elbo(sim):
    X, u, _ = sim
    search = GridSearchCV(IdentifiableVAE(**FAST), GRID, cv=CV).fit(X, u)
    results = search.cv_results_
    assert len(results["params"]) == 8
    assert np.isfinite(results["mean_test_score"]).all()
    assert search.best_score_ == results["mean_test_score"].max()
    # Each split score is score(X_test, u_test) of a clone fitted on the train fold.
    params = results["params"][5]
    train, test = next(CV.split(X))
    est = clone(IdentifiableVAE(**FAST)).set_params(**params).fit(X[train], u[train])
    assert_allclose(results["split0_test_score"][5], est.score(X[test], u[test]))
    assert search.best_estimator_.n_components_ == search.best_params_["n_components"]


def test_randomized_search(sim):
    X, u, _ = sim
    search = RandomizedSearchCV(
        NonlinearICA(method="ivae", **FAST),
        {
            "learning_rate_init": loguniform(1e-3, 1e-1),
            "hidden_layer_sizes": [(4,), (8,)],
            "prior": ["gaussian", "laplace", "gaussian_var"],
        },
        n_iter=3,
        cv=CV,
        random_state=0,
    ).fit(X, u)
    params = search.cv_results_["params"]
    assert len(params) == 3
    assert all(1e-3 <= p["learning_rate_init"] <= 1e-1 for p in params)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_grid_search_with_routed_mcc_scorer(sim):
    X, u, S = sim
    grid = {"n_components": [2, 3], "prior": ["gaussian", "laplace"]}
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            IdentifiableVAE(**FAST), grid, scoring=mcc_scorer, cv=CV
        ).fit(X, u, sources=S)
    results = search.cv_results_
    assert ((results["mean_test_score"] > 0) & (results["mean_test_score"] <= 1)).all()
    # Fold 1 of candidate 3 is the MCC against that fold's own sources.
    train, test = list(CV.split(X))[1]
    cand = IdentifiableVAE(**FAST).set_params(**results["params"][3])
    cand.fit(X[train], u[train])
    assert_allclose(
        results["split1_test_score"][3],
        mean_corr_coef(S[test], cand.transform(X[test])),
    )


@pytest.mark.parametrize("Estimator", [IdentifiableVAE, NonlinearICA])
def test_inverse_transform_argument_is_data_not_metadata(Estimator, sim):
    # The latents given to inverse_transform are its data (like scikit-learn's
    # X), so there is no set_inverse_transform_request, and a routed Pipeline
    # round trip runs without one.
    X, u, S = sim
    assert not hasattr(Estimator(), "set_inverse_transform_request")
    assert set(Estimator().get_metadata_routing().inverse_transform.requests) == set()
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler(), Estimator(**FAST)).fit(X, u)
        Xhat = pipe.inverse_transform(pipe.transform(X))
    assert Xhat.shape == X.shape


@pytest.mark.parametrize("Estimator", [IdentifiableVAE, NonlinearICA])
def test_routed_pipeline_score_and_search(Estimator, sim):
    # Under routing, scikit-learn's Pipeline.score passes sample_weight (None)
    # to the last step's score: a score without that parameter made it a
    # TypeError and a search's default scoring all NaN.
    X, u, S = sim
    pipe = make_pipeline(StandardScaler(), Estimator(**FAST)).fit(X, u)
    plain = pipe.score(X, u)
    with sklearn.config_context(enable_metadata_routing=True):
        assert pipe.score(X, u) == plain
        search = GridSearchCV(
            make_pipeline(StandardScaler(), Estimator(**FAST)),
            {f"{Estimator.__name__.lower()}__tol": [1e-4, 1e-3]},
            cv=CV,
        ).fit(X, u)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


@pytest.mark.parametrize("Estimator", [IdentifiableVAE, NonlinearICA])
def test_score_sample_weight_is_a_weighted_mean(Estimator, sim):
    X, u, S = sim
    est = Estimator(**FAST).fit(X, u)
    rows = est.score_samples(X, u)
    w = np.random.RandomState(0).uniform(size=len(X))
    assert est.score(X, u, sample_weight=w) == pytest.approx(
        np.average(rows, weights=w)
    )
    # A zero weight removes a row; equal weights are the plain mean.
    w0 = np.r_[np.zeros(10), np.ones(len(X) - 10)]
    assert est.score(X, u, sample_weight=w0) == pytest.approx(rows[10:].mean())
    assert est.score(X, u, sample_weight=np.full(len(X), 3.0)) == pytest.approx(
        est.score(X, u)
    )
    for bad, match in [
        (w[:-1], "one weight per row"),
        (-w, "non-negative"),
        (np.zeros(len(X)), "positive sum"),
        (np.r_[np.nan, w[1:]], "sample_weight"),
    ]:
        with pytest.raises(ValueError, match=match):
            est.score(X, u, sample_weight=bad)


# ------------------------------------------------------- parallel and distributed
class _ThreadProbeVAE(IdentifiableVAE):
    """Records torch's thread count while the model is built inside ``fit``."""

    def _build_module(self, n_features, seed, **kwargs):
        self.threads_in_fit_ = torch.get_num_threads()
        return super()._build_module(n_features, seed, **kwargs)


def _threads_scorer(estimator, X, y=None):
    return float(estimator.threads_in_fit_)


SMALL_GRID = {"prior": ["gaussian", "laplace"], "hidden_layer_sizes": [(4,), (8,)]}


def _search(**kwargs):
    return GridSearchCV(
        _ThreadProbeVAE(2, **FAST),
        SMALL_GRID,
        cv=CV,
        scoring={"elbo": lambda est, X, y: est.score(X, y), "threads": _threads_scorer},
        refit="elbo",
        **kwargs,
    )


def _assert_same_results(a, b):
    for key in ("mean_test_elbo", "split0_test_elbo", "split1_test_elbo"):
        assert_array_equal(a.cv_results_[key], b.cv_results_[key], err_msg=key)
    assert a.best_params_ == b.best_params_


@pytest.fixture(scope="module")
def serial_search(sim):
    """The search of :func:`_search` run in this process, once."""
    X, u, _ = sim
    return _search(n_jobs=1).fit(X, u)


def test_n_jobs_2_loky_matches_serial_and_limits_threads(sim, serial_search):
    X, u, _ = sim
    serial = serial_search
    parallel = _search(n_jobs=2).fit(X, u)  # joblib's default backend: loky processes
    _assert_same_results(serial, parallel)
    # Every fit ran with n_threads=1 torch thread, in its worker process too, so
    # n_jobs workers use n_jobs cores: no oversubscription.
    assert (parallel.cv_results_["mean_test_threads"] == 1).all()
    assert (serial.cv_results_["mean_test_threads"] == 1).all()


def test_n_threads_none_keeps_the_processes_setting(sim):
    X, u, _ = sim
    # one candidate and no flow start: 3 small fits, as torch's 2 threads
    # beside another test worker on 2 cores make every operation slow
    search = _search(n_jobs=1).set_params(param_grid={"prior": ["gaussian"]})
    search.estimator.set_params(n_threads=None, init="random")
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        search.fit(X, u)
    finally:
        torch.set_num_threads(old)
    assert (search.cv_results_["mean_test_threads"] == 2).all()


def test_dask_backend_matches_serial(sim, serial_search):
    distributed = pytest.importorskip(
        "dask.distributed", reason="dask[distributed] is not installed"
    )
    import joblib

    X, u, _ = sim
    serial = serial_search
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        with joblib.parallel_config(backend="dask"):
            on_dask = _search(n_jobs=-1).fit(X, u)
        ran_on = client.run(lambda: torch.get_num_threads())
    _assert_same_results(serial, on_dask)
    assert (on_dask.cv_results_["mean_test_threads"] == 1).all()
    assert len(ran_on) == 2


def test_package_version_is_the_installed_distributions():
    # skivae.__version__ (written into saved models and the docs) and the
    # version in pyproject.toml (what pip installs) must move together.
    from importlib.metadata import version

    import skivae

    assert skivae.__version__ == version("skivae")
