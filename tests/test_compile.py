"""``compile=True``: the training loss through torch.compile, and its fallback.

The real inductor backend spends 20-60 s compiling C++ (too slow for the
suite; ``benchmarks/bench_compile.py`` measures it). These tests run
torch.compile with dynamo's ``eager`` backend (the same graph capture, no
code generation), or with a backend that fails as a missing compiler does.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skivae import (
    CompileFallbackWarning,
    IdentifiabilityWarning,
    IdentifiableVAE,
    NonlinearICA,
)
from skivae._core import training


@pytest.fixture
def compile_calls(monkeypatch):
    """Record what torch.compile is asked to compile, and compile it with
    dynamo's ``eager`` backend."""
    calls = []
    real = torch.compile

    def spy(fn, **kwargs):
        calls.append((fn, kwargs))
        return real(fn, **kwargs)

    monkeypatch.setattr(torch, "compile", spy)
    monkeypatch.setattr(training._LossStep, "backend", "eager")
    return calls


def _fit(cls, X, u, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        warnings.simplefilter("ignore", category=IdentifiabilityWarning)
        return cls(max_iter=2, random_state=0, **params).fit(X, u)


def test_compile_runs_the_flow_loss_through_dynamo(segment_data, compile_calls):
    # The loss of the model being trained is what gets compiled, once per
    # training run, and dynamo captures it into graphs; the fit is the
    # eager fit up to float rounding.
    from torch._dynamo.utils import counters

    X, u, _ = segment_data
    eager = _fit(NonlinearICA, X, u)
    assert compile_calls == []  # compile=False never compiles
    before = counters["stats"]["unique_graphs"]
    est = _fit(NonlinearICA, X, u, compile=True)
    assert len(compile_calls) == 1
    fn, kwargs = compile_calls[0]
    # (the flow's restarts train as one model: each restart's loss, batched)
    assert fn.__func__ is type(est.module_).restart_loss
    assert kwargs == {"backend": "eager"}
    assert counters["stats"]["unique_graphs"] > before
    np.testing.assert_allclose(est.transform(X), eager.transform(X), atol=1e-4)


def test_failed_compile_trains_eagerly_with_a_warning(
    segment_data, compile_calls, monkeypatch
):
    # A backend that fails (as inductor does without a C++ compiler): fit
    # warns, naming the error, and gives exactly the eager fit. The iVAE
    # compiles only its flow start (its own loss ran slower compiled).
    from skivae._core.flow import FlowModule

    def broken(gm, example_inputs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(training._LossStep, "backend", staticmethod(broken))
    X, u, _ = segment_data
    match = "RuntimeError: no C.. compiler found"
    with pytest.warns(CompileFallbackWarning, match=match):
        est = _fit(IdentifiableVAE, X, u, compile=True)
    assert [fn.__func__ for fn, _ in compile_calls] == [FlowModule.loss]
    eager = _fit(IdentifiableVAE, X, u)
    np.testing.assert_array_equal(est.transform(X), eager.transform(X))
    assert est.loss_curve_ == eager.loss_curve_
