"""Missing cells: a Gaussian model of ``x`` whose conditional means fill
them for the masked iVAE's encoder, and whose conditional draws fill them
for its flow start."""

import torch


def conditional_fill(X, mean, prec, chunk=65536, generator=None):
    """``X`` (a float tensor, NaN in the missing cells) with each missing
    cell replaced by its conditional mean given the row's observed cells,
    under the Gaussian ``N(mean, prec^-1)``; observed cells are returned
    unchanged. Returns ``(filled, cond)``: ``cond`` is the sum over rows of
    the conditional covariance of the missing cells (zero elsewhere), which
    :func:`gaussian_stats` needs.

    With a ``generator`` (a :class:`torch.Generator` on ``X``'s device) the
    missing cells of each row are instead drawn jointly from their
    conditional law given the observed ones: the conditional mean plus
    Gaussian noise of the conditional covariance. Unlike the means, such
    draws keep the data's spread (a row filled by means lies on a plane of
    the observed cells), which is what a density model fitted to the
    filled rows needs.

    For a row with missing set ``m`` the conditional mean solves
    ``prec[m, m] (x_m - mean_m) = -prec[m, o] (x_o - mean_o)``, and
    ``prec[m, m]^-1`` is the conditional covariance. The system is written
    on all features, with identity rows for the observed ones, and solved
    once per distinct missingness pattern of a chunk of rows. With ``prec``
    the identity this is filling with ``mean``.
    """
    missing = torch.isnan(X)
    filled = torch.empty_like(X)
    cond = torch.zeros_like(prec)
    for lo in range(0, X.shape[0], chunk):
        rows, miss = X[lo : lo + chunk], missing[lo : lo + chunk]
        patterns, which = torch.unique(miss, dim=0, return_inverse=True)
        m = patterns.to(X.dtype)
        outer = m.unsqueeze(-1) * m.unsqueeze(-2)
        A_inv = torch.linalg.inv(prec * outer + torch.diag_embed(1.0 - m))
        dev = (rows - mean).nan_to_num(0.0)
        rhs = miss.to(X.dtype) * (dev @ prec)
        guess = mean + dev - torch.einsum("nij,nj->ni", A_inv[which], rhs)
        if generator is not None:
            # A_inv is block-diagonal (missing block, identity on the
            # observed), so is its Cholesky factor: its observed rows zeroed,
            # L eps has the conditional covariance on the missing cells.
            L = torch.linalg.cholesky(A_inv) * m.unsqueeze(-1)
            eps = torch.randn(
                rows.shape, generator=generator, dtype=X.dtype, device=X.device
            )
            guess = guess + torch.einsum("nij,nj->ni", L[which], eps)
        filled[lo : lo + chunk] = torch.where(miss, guess, rows)
        counts = torch.bincount(which, minlength=patterns.shape[0]).to(X.dtype)
        cond += torch.einsum("k,kij->ij", counts, A_inv * outer)
    return filled, cond


def gaussian_stats(X, n_iter=10):
    """``(mean, prec)`` of a multivariate Gaussian fitted by
    expectation-maximisation to ``X`` (a float tensor, NaN in the missing
    cells), in ``X``'s dtype: the model of :func:`conditional_fill`.

    The start is the observed cells' means and the covariance of the
    mean-filled data; each pass fills the missing cells by their conditional
    means and re-estimates the mean and covariance, the latter with the
    conditional covariances added (the exact E-step). A small ridge keeps the
    covariance invertible when features are collinear.
    """
    data = X.to(torch.float64)
    n, d = data.shape
    observed = (~torch.isnan(data)).to(data.dtype)
    mean = data.nan_to_num(0.0).sum(0) / observed.sum(0).clamp_min(1.0)
    centred = torch.where(torch.isnan(data), 0.0, data - mean)
    cov = centred.T @ centred / n
    eye = torch.eye(d, dtype=data.dtype, device=data.device)
    for _ in range(n_iter):
        prec = torch.linalg.inv(cov + 1e-6 * cov.diagonal().mean() * eye)
        filled, cond = conditional_fill(data, mean, prec)
        mean = filled.mean(0)
        centred = filled - mean
        cov = (centred.T @ centred + cond) / n
    prec = torch.linalg.inv(cov + 1e-6 * cov.diagonal().mean() * eye)
    return mean.to(X.dtype), prec.to(X.dtype)
