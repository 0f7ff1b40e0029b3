"""Exact Gaussian processes with an SE-ARD kernel, and their predictions at a Gaussian input by
exact moment matching, for PILCO ([3] Deisenroth & Rasmussen 2011; Deisenroth 2010, thesis,
ch. 2; Deisenroth, Fox & Rasmussen 2015, TPAMI, the appendix on moment matching).

One GP per output dimension a, with the squared-exponential kernel

    k_a(x, x') = alpha_a^2 exp(-1/2 (x - x')^T Lambda_a^-1 (x - x')),  Lambda_a = diag(ell_a^2)

and noise sigma_a^2; its hyperparameters maximise the log marginal likelihood.
`beta_a = (K_a + sigma_a^2 I)^-1 y_a`.

At an uncertain input x ~ N(mu, Sigma), with nu_i = x_i - mu, the predictive distribution of
the outputs is replaced by the Gaussian with its exact mean and covariance:

    mean        m_a   = beta_a^T q_a,
                q_ai  = alpha_a^2 |Sigma Lambda_a^-1 + I|^-1/2 exp(-1/2 nu_i^T (Sigma + Lambda_a)^-1 nu_i)
    covariance  S_ab  = beta_a^T Q beta_b - m_a m_b + delta_ab (alpha_a^2 - tr((K_a + sigma_a^2 I)^-1 Q)),
                Q_ij  = k_a(x_i, mu) k_b(x_j, mu) |R|^-1/2 exp(1/2 z_ij^T R^-1 Sigma z_ij),
                R     = Sigma (Lambda_a^-1 + Lambda_b^-1) + I,  z_ij = Lambda_a^-1 nu_i + Lambda_b^-1 nu_j
    input-output Sigma^-1 cov(x, f_a) = sum_i beta_ai q_ai (Sigma + Lambda_a)^-1 nu_i

The same formulas without the delta_ab term give the moments of a deterministic RBF network
sum_i beta_i exp(-1/2 (x - c_i)^T Lambda^-1 (x - c_i)), PILCO's policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# The PILCO software's `hypCurb` penalty on the marginal likelihood, which keeps length-scales
# within a factor `CURB_LENGTHSCALE` of the inputs' spread and the signal-to-noise ratio under
# `CURB_SNR`: without it a GP fitted to the first few trials can explain everything as noise.
CURB_LENGTHSCALE = 100.0
CURB_SNR = 500.0
CURB_POWER = 30


@dataclass
class MomentMatch:
    """The Gaussian that replaces the prediction at an uncertain input."""

    mean: Tensor  # (E,)
    covariance: Tensor  # (E, E)
    input_output: Tensor  # (D, E) Sigma^-1 cov(x, f): cov(x, f) = Sigma @ input_output


def squared_exponential(left: Tensor, right: Tensor, log_lengthscales: Tensor, log_signal: Tensor) -> Tensor:
    """(E, N, M) kernel k_a(left_n, right_m) for `left` (N, D), `right` (M, D), per output a."""
    lengthscales = log_lengthscales.exp()[:, None, :]  # (E, 1, D)
    distance_sq = torch.cdist(left / lengthscales, right / lengthscales) ** 2
    return (2 * log_signal)[:, None, None].exp() * torch.exp(-distance_sq / 2)


class ExactGP:
    """Independent exact GPs from `inputs` (N, D) to each column of `targets` (N, E)."""

    def __init__(self, input_dim: int, output_dim: int):
        self.input_dim, self.output_dim = input_dim, output_dim
        # log ell (E, D), log alpha (E,), log sigma (E,), set from the data at the first fit
        self.log_hyperparameters = torch.zeros(output_dim, input_dim + 2, dtype=torch.float64)
        self.fitted = False
        self.inputs = torch.zeros(0, input_dim, dtype=torch.float64)
        self.targets = torch.zeros(0, output_dim, dtype=torch.float64)

    def unpack(self, log_hyperparameters: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return log_hyperparameters[:, : self.input_dim], log_hyperparameters[:, -2], log_hyperparameters[:, -1]

    def negative_log_likelihood(self, log_hyperparameters: Tensor) -> Tensor:
        """(E,) minus the log marginal likelihood of each output's targets, per data point."""
        log_lengthscales, log_signal, log_noise = self.unpack(log_hyperparameters)
        count = len(self.inputs)
        gram = squared_exponential(self.inputs, self.inputs, log_lengthscales, log_signal)
        gram = gram + (2 * log_noise)[:, None, None].exp() * torch.eye(count, dtype=gram.dtype)
        cholesky = torch.linalg.cholesky(gram)
        targets = self.targets.T[:, :, None]  # (E, N, 1)
        alpha = torch.cholesky_solve(targets, cholesky)
        fit = (targets * alpha).sum((1, 2)) / 2
        log_det = cholesky.diagonal(dim1=1, dim2=2).log().sum(-1)
        return (fit + log_det + count * math.log(2 * math.pi) / 2) / count

    def curb(self, log_hyperparameters: Tensor) -> Tensor:
        """(E,) the hypCurb penalty, per data point."""
        log_lengthscales, log_signal, log_noise = self.unpack(log_hyperparameters)
        spread = self.inputs.std(0).clamp_min(1e-6).log()  # (D,)
        lengthscale = (((log_lengthscales - spread) / math.log(CURB_LENGTHSCALE)) ** CURB_POWER).sum(-1)
        snr = ((log_signal - log_noise) / math.log(CURB_SNR)) ** CURB_POWER
        return (lengthscale + snr) / len(self.inputs)

    def set_data(self, inputs: Tensor, targets: Tensor) -> None:
        self.inputs, self.targets = inputs.to(torch.float64), targets.to(torch.float64)

    def fit(self, inputs: Tensor, targets: Tensor, iterations: int = 100) -> dict:
        """Set the data and maximise the (curbed) marginal likelihood by L-BFGS, warm-started
        from the last fit. Returns the per-point negative log likelihood before and after."""
        self.set_data(inputs, targets)
        if not self.fitted:
            spread = self.inputs.std(0).clamp_min(1e-3)
            signal = self.targets.std(0).clamp_min(1e-3)
            log_lengthscales = spread.log().expand(self.output_dim, -1)  # ell: the inputs' spread, alpha: the targets', sigma = alpha / 10
            self.log_hyperparameters = torch.cat([log_lengthscales, signal.log()[:, None], (signal / 10).log()[:, None]], dim=1)
        parameters = self.log_hyperparameters.clone().requires_grad_(True)
        optimizer = torch.optim.LBFGS([parameters], max_iter=iterations, line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

        def objective() -> Tensor:
            optimizer.zero_grad()
            try:
                loss = (self.negative_log_likelihood(parameters) + self.curb(parameters)).sum()
            except torch.linalg.LinAlgError:  # a step to a singular Gram matrix: reject it
                return torch.tensor(float("inf"), dtype=torch.float64)
            loss.backward()
            return loss

        with torch.no_grad():
            before = self.negative_log_likelihood(parameters).sum().item()
        optimizer.step(objective)
        self.log_hyperparameters = parameters.detach()
        self.fitted = True
        with torch.no_grad():
            after = self.negative_log_likelihood(self.log_hyperparameters).sum().item()
        return {"loss_before": before, "loss": after}

    def posterior(self) -> "GPPosterior":
        """The fixed quantities of prediction: beta (E, N) and (K + sigma^2 I)^-1 (E, N, N)."""
        log_lengthscales, log_signal, log_noise = self.unpack(self.log_hyperparameters)
        gram = squared_exponential(self.inputs, self.inputs, log_lengthscales, log_signal)
        gram = gram + (2 * log_noise)[:, None, None].exp() * torch.eye(len(self.inputs), dtype=gram.dtype)
        cholesky = torch.linalg.cholesky(gram)
        inverse_gram = torch.cholesky_inverse(cholesky)
        beta = (inverse_gram @ self.targets.T[:, :, None])[..., 0]
        return GPPosterior(self.inputs, beta, log_lengthscales, log_signal, inverse_gram)


@dataclass
class GPPosterior:
    """A trained GP (or, with `inverse_gram` None, an RBF network) ready to predict."""

    centres: Tensor  # (N, D) training inputs or basis-function centres
    beta: Tensor  # (E, N)
    log_lengthscales: Tensor  # (E, D)
    log_signal: Tensor  # (E,)
    inverse_gram: Tensor | None = None  # (E, N, N); None for a deterministic RBF network

    def __post_init__(self):
        outputs = self.beta.shape[0]
        self.pairs = torch.triu_indices(outputs, outputs)  # (2, P) the pairs a <= b
        first, second = self.pairs
        # beta_a beta_b^T - delta_ab (K_a + sigma_a^2 I)^-1, fixed while a policy is optimised
        self.pair_weights = self.beta[first, :, None] * self.beta[second, None, :]  # (P, N, N)
        if self.inverse_gram is not None:
            self.pair_weights = self.pair_weights - (first == second).to(self.beta.dtype)[:, None, None] * self.inverse_gram[first]

    def mean(self, inputs: Tensor) -> Tensor:
        """(B, E) predictive mean at certain `inputs` (B, D)."""
        kernel = squared_exponential(inputs, self.centres, self.log_lengthscales, self.log_signal)  # (E, B, N)
        return torch.einsum("ebn,en->be", kernel, self.beta)

    def moment_match(self, mean: Tensor, covariance: Tensor) -> MomentMatch:
        """The exact mean, covariance and input-output covariance of the prediction at an input
        x ~ N(`mean` (D,), `covariance` (D, D)); see the module docstring."""
        outputs, input_dim = self.beta.shape[0], len(mean)
        eye = torch.eye(input_dim, dtype=mean.dtype)
        inverse_lengthscales = torch.exp(-self.log_lengthscales)  # (E, D)
        signal_sq = torch.exp(2 * self.log_signal)  # (E,)
        offsets = self.centres - mean  # (N, D) nu_i

        scaled = offsets[None] * inverse_lengthscales[:, None, :]  # (E, N, D) Lambda^-1/2 nu
        b = inverse_lengthscales[:, :, None] * covariance * inverse_lengthscales[:, None, :] + eye  # (E, D, D)
        b_cholesky = torch.linalg.cholesky(b)
        solved = torch.cholesky_solve(scaled.transpose(1, 2), b_cholesky).transpose(1, 2)  # (E, N, D) B^-1 Lambda^-1/2 nu
        b_root_det = b_cholesky.diagonal(dim1=1, dim2=2).prod(-1)  # |B|^1/2 = |Sigma Lambda^-1 + I|^1/2
        q = torch.exp(-(scaled * solved).sum(-1) / 2) * (signal_sq / b_root_det)[:, None]  # (E, N)
        weighted = self.beta * q  # (E, N)
        output_mean = weighted.sum(-1)
        input_output = torch.einsum("en,end->de", weighted, solved * inverse_lengthscales[:, None, :])

        # R = Sigma D + I with D = Lambda_a^-1 + Lambda_b^-1 has the determinant of the symmetric
        # R_s = D^1/2 Sigma D^1/2 + I, and R^-1 Sigma = D^-1/2 (I - R_s^-1) D^-1/2
        first, second = self.pairs
        precision = inverse_lengthscales**2  # (E, D) Lambda^-1
        root = (precision[first] + precision[second]).sqrt()  # (P, D) D^1/2
        r_cholesky = torch.linalg.cholesky(root[:, :, None] * covariance * root[:, None, :] + eye)
        r_sigma = (eye - torch.cholesky_inverse(r_cholesky)) / (root[:, :, None] * root[:, None, :])  # (P, D, D) R^-1 Sigma
        zeta = offsets[None] * precision[:, None, :]  # (E, N, D) Lambda^-1 nu
        log_k = 2 * self.log_signal[:, None] - (scaled**2).sum(-1) / 2  # (E, N) log k_a(x_i, mu)
        zeta_first, zeta_second = zeta[first], zeta[second]
        projected_first = zeta_first @ r_sigma  # (P, N, D)
        projected_second = zeta_second @ r_sigma
        row = log_k[first] + (projected_first * zeta_first).sum(-1) / 2  # (P, N)
        column = log_k[second] + (projected_second * zeta_second).sum(-1) / 2
        log_q = row[:, :, None] + column[:, None, :] + projected_first @ zeta_second.transpose(1, 2)  # (P, N, N)
        pair_moments = (self.pair_weights * log_q.exp()).sum((1, 2)) / r_cholesky.diagonal(dim1=1, dim2=2).prod(-1)  # (P,)
        second_moment = torch.zeros(outputs, outputs, dtype=mean.dtype).index_put((first, second), pair_moments)
        second_moment = second_moment + torch.triu(second_moment, 1).T
        if self.inverse_gram is not None:
            second_moment = second_moment + torch.diag(signal_sq)
        output_covariance = second_moment - output_mean[:, None] * output_mean[None, :]
        return MomentMatch(output_mean, (output_covariance + output_covariance.T) / 2, input_output)
