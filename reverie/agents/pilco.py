"""PILCO: probabilistic inference for learning control.

[3] Deisenroth & Rasmussen 2011, "PILCO: A Model-Based and Data-Efficient Approach to Policy
Search", ICML; details from Deisenroth 2010 (thesis, ch. 3) and Deisenroth, Fox & Rasmussen 2015
("Gaussian Processes for Data-Efficient Learning in Robotics and Control", TPAMI). The agent
alternates (Alg. 1):

1. apply the policy for one trial (the first `random_episodes` trials act uniformly at random);
2. fit one GP per state dimension to the state changes, s_{t+1} - s_t ~ GP(features(s_t), u_t),
   by maximising the marginal likelihood (`reverie.agents.gp`); an angle th enters
   the model and the policy as (sin th, cos th);
3. improve the policy by L-BFGS on the predicted expected cost of a trial,

       J(psi) = sum_{t=1}^{H} E[c(s_t)],   s_0 ~ N(mu_0, Sigma_0)

   where p(s_1), ..., p(s_H) are Gaussians propagated by exact moment matching (the paper's
   policy evaluation): p(s_t) -> joint p(s_t, sin th, cos th) (trigonometric moments) -> the
   policy's pre-squash output pi~ (the moments of the RBF network below) -> u = u_max sin(pi~)
   (a sine squashing; the paper's is u_max (9 sin x + sin 3x) / 8, a flatter-topped sine) -> the
   GP's prediction of the change Delta_t at the Gaussian input (features, u)
   (`GPPosterior.moment_match`) -> p(s_{t+1}) with mean mu_t + mu_Delta and covariance
   Sigma_t + Sigma_Delta + cov(s_t, Delta) + cov(Delta, s_t). Every step is differentiable, so
   autograd through it is the paper's analytic gradient dJ/dpsi (its policy improvement).

The policy is an RBF network written as the mean of a GP with pseudo-training set
(centres c_i, pseudo-targets y_i) and length-scales ell, as in the paper:

    pi~(x) = sum_i beta_i k(c_i, x),   beta = (K + sigma_pi^2 I)^-1 y,   k with signal variance 1

and psi = (c, y, ell). The cost is the saturating 1 - exp(-d^2 / (2 w^2)) of the distance d of a
point that is linear in the features (the cart-pole's pole tip) to its target; its
expectation under a Gaussian is closed-form.

The defaults are the paper's cart-pole settings: 10 basis functions, a 40-step (4 s) horizon,
one random trial.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from reverie.agents.base import TaskAgent
from reverie.agents.gp import ExactGP, GPPosterior, squared_exponential
from reverie.agents.registry import AGENTS
from reverie.envs.pilco_cartpole import COST_WIDTH, DT, START_STD, tip_offset

DTYPE = torch.float64


@dataclass
class PILCOConfig:
    basis_functions: int = 10  # RBF policy centres
    horizon: int = 40  # H, predicted steps per policy evaluation
    random_episodes: int = 1
    policy_evaluations: int = 150  # L-BFGS function evaluations per policy improvement
    gp_iterations: int = 100  # L-BFGS iterations per GP fit
    policy_noise: float = 0.01  # sigma_pi of the pseudo-training set
    recompute_above: int = 250  # past this many data points, recompute each step's moment matching in backward (memory)
    success_distance: float = 0.15  # a trial succeeds if the cost's distance stays under this ...
    success_steps: int = 10  # ... over its last steps (1 s)
    replay_capacity: int = 10_000
    seed: int = 0


@dataclass(frozen=True)
class PILCOTask:
    """What PILCO needs to know of a task: its angles, its start distribution and its cost."""

    angles: tuple[int, ...]  # observation dims that are angles: models see their sin and cos
    cost_projection: Tensor  # (C, F) the cost's point minus target = projection @ features - target
    cost_target: Tensor  # (C,)
    cost_width: float  # w of the saturating cost
    start_std: float  # s_0 ~ N(0, start_std^2 I)
    dt: float  # seconds per step


PILCO_TASKS: dict[str, PILCOTask] = {
    "reverie/PilcoCartpole-v0": PILCOTask((2,), *tip_offset(), cost_width=COST_WIDTH, start_std=START_STD, dt=DT),
}


def select(mean: Tensor, covariance: Tensor, index: list[int]) -> tuple[Tensor, Tensor]:
    return mean[index], covariance[index][:, index]


def append(mean: Tensor, covariance: Tensor, new_mean: Tensor, new_covariance: Tensor, cross: Tensor) -> tuple[Tensor, Tensor]:
    """The joint Gaussian of z ~ N(`mean`, `covariance`) and y with the given moments and cross (Z, Y) = cov(z, y)."""
    top = torch.cat([covariance, cross], dim=1)
    bottom = torch.cat([cross.T, new_covariance], dim=1)
    return torch.cat([mean, new_mean]), torch.cat([top, bottom], dim=0)


def append_sin_cos(mean: Tensor, covariance: Tensor, index: int, scale: float = 1.0) -> tuple[Tensor, Tensor]:
    """The joint Gaussian of z and (scale sin z_i, scale cos z_i) by exact moments."""
    mu, variance = mean[index], covariance[index, index]
    decay, decay_sq = torch.exp(-variance / 2), torch.exp(-2 * variance)
    sin_mean, cos_mean = decay * torch.sin(mu), decay * torch.cos(mu)
    sin_var = (1 - decay_sq * torch.cos(2 * mu)) / 2 - sin_mean**2
    cos_var = (1 + decay_sq * torch.cos(2 * mu)) / 2 - cos_mean**2
    sin_cos = decay_sq * torch.sin(2 * mu) / 2 - sin_mean * cos_mean
    new_covariance = scale**2 * torch.stack([torch.stack([sin_var, sin_cos]), torch.stack([sin_cos, cos_var])])
    # Stein's lemma: cov(z, g(z_i)) = cov(z, z_i) E[g'(z_i)]
    cross = scale * covariance[:, index : index + 1] * torch.stack([cos_mean, -sin_mean])[None]
    return append(mean, covariance, scale * torch.stack([sin_mean, cos_mean]), new_covariance, cross)


class PILCOModel:
    """The moment-matching predictions of one PILCO agent: features, a trial's expected cost."""

    def __init__(self, task: PILCOTask, state_dim: int, max_action: Tensor):
        self.task, self.state_dim, self.max_action = task, state_dim, max_action
        self.action_bounds = max_action.tolist()
        self.plain = [dim for dim in range(state_dim) if dim not in task.angles]
        # the features are the plain dims, then (sin, cos) of each angle, appended after the state
        self.feature_index = self.plain + [state_dim + offset for offset in range(2 * len(task.angles))]

    def features(self, states: Tensor) -> Tensor:
        """(..., F) model and policy inputs of (..., S) states."""
        angles = states[..., list(self.task.angles)]
        trig = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(-2)
        return torch.cat([states[..., self.plain], trig], dim=-1)

    def with_trig(self, mean: Tensor, covariance: Tensor) -> tuple[Tensor, Tensor]:
        for angle in self.task.angles:
            mean, covariance = append_sin_cos(mean, covariance, angle)
        return mean, covariance

    def step(self, mean: Tensor, covariance: Tensor, policy: GPPosterior, dynamics: GPPosterior) -> tuple[Tensor, Tensor]:
        """p(s_{t+1}) from p(s_t) = N(`mean` (S,), `covariance` (S, S)) under the policy; see the module docstring."""
        joint_mean, joint_cov = self.with_trig(mean, covariance)
        policy_mm = policy.moment_match(*select(joint_mean, joint_cov, self.feature_index))
        cross = joint_cov[:, self.feature_index] @ policy_mm.input_output
        joint_mean, joint_cov = append(joint_mean, joint_cov, policy_mm.mean, policy_mm.covariance, cross)
        first_raw, actions = len(joint_mean) - len(self.max_action), []
        for dim, bound in enumerate(self.action_bounds):
            joint_mean, joint_cov = append_sin_cos(joint_mean, joint_cov, first_raw + dim, scale=bound)
            actions.append(len(joint_mean) - 2)  # u = u_max sin(pi~); its cos is not used
        model_index = self.feature_index + actions
        change = dynamics.moment_match(*select(joint_mean, joint_cov, model_index))
        state_cross = joint_cov[: self.state_dim, model_index] @ change.input_output  # (S, S) cov(s_t, Delta)
        next_covariance = covariance + change.covariance + state_cross + state_cross.T
        return mean + change.mean, (next_covariance + next_covariance.T) / 2

    def expected_cost(self, mean: Tensor, covariance: Tensor) -> Tensor:
        """E[1 - exp(-|P f - target|^2 / (2 w^2))] for s ~ N(`mean`, `covariance`), f its features."""
        feature_mean, feature_cov = select(*self.with_trig(mean, covariance), self.feature_index)
        projection = self.task.cost_projection
        offset = projection @ feature_mean - self.task.cost_target
        offset_cov = projection @ feature_cov @ projection.T
        width_sq = self.task.cost_width**2
        # |I + S / w^2|^-1/2 exp(-1/2 m^T (S + w^2 I)^-1 m), both from one Cholesky factor
        cholesky = torch.linalg.cholesky(offset_cov + width_sq * torch.eye(len(offset), dtype=DTYPE))
        whitened = torch.linalg.solve_triangular(cholesky, offset[:, None], upper=False)[:, 0]
        root_det = cholesky.diagonal().prod() / self.task.cost_width ** len(offset)
        return 1 - torch.exp(-(whitened**2).sum() / 2) / root_det

    def trial_cost(self, policy: GPPosterior, dynamics: GPPosterior, horizon: int, recompute: bool) -> Tensor:
        """J = sum_{t=1}^{H} E[c(s_t)] from the task's start distribution."""
        mean = torch.zeros(self.state_dim, dtype=DTYPE)
        covariance = self.task.start_std**2 * torch.eye(self.state_dim, dtype=DTYPE)
        total = torch.zeros((), dtype=DTYPE)
        for _ in range(horizon):
            if recompute:
                mean, covariance = checkpoint(self.step, mean, covariance, policy, dynamics, use_reentrant=False)
            else:
                mean, covariance = self.step(mean, covariance, policy, dynamics)
            total = total + self.expected_cost(mean, covariance)
        return total

    def cost_distance(self, states: Tensor) -> Tensor:
        """(...) the distance the cost saturates in, |P f(s) - target|, for (..., S) states."""
        return (self.features(states) @ self.task.cost_projection.T - self.task.cost_target).norm(dim=-1)


class RBFPolicy:
    """The parameters psi of PILCO's RBF policy: centres (K, F), pseudo-targets (K, A) and
    log length-scales (A, F), drawn as in the PILCO software: centres from the start
    distribution's features, pseudo-targets from N(0, 0.1^2), length-scales 1 (0.7 for sin, cos)."""

    names = ("centres", "pseudo_targets", "log_lengthscales")

    def __init__(self, model: PILCOModel, basis_functions: int, noise: float, generator: torch.Generator):
        start = model.task.start_std * torch.randn(basis_functions, model.state_dim, generator=generator, dtype=DTYPE)
        self.centres = model.features(start)
        self.pseudo_targets = 0.1 * torch.randn(basis_functions, len(model.max_action), generator=generator, dtype=DTYPE)
        lengthscales = torch.tensor([1.0] * len(model.plain) + [0.7] * 2 * len(model.task.angles), dtype=DTYPE)
        self.log_lengthscales = lengthscales.log().expand(len(model.max_action), -1).clone()
        self.noise = noise

    def parameters(self) -> list[Tensor]:
        return [getattr(self, name) for name in self.names]

    def set_parameters(self, values: list[Tensor]) -> None:
        for name, value in zip(self.names, values):
            setattr(self, name, value.detach().clone())

    def posterior(self, parameters: list[Tensor] | None = None) -> GPPosterior:
        """The network pi~ as a noiseless `GPPosterior` (beta solved from the pseudo-training set)."""
        centres, pseudo_targets, log_lengthscales = parameters or self.parameters()
        log_signal = torch.zeros(len(log_lengthscales), dtype=DTYPE)
        gram = squared_exponential(centres, centres, log_lengthscales, log_signal)  # (A, K, K)
        gram = gram + self.noise**2 * torch.eye(len(centres), dtype=DTYPE)
        beta = torch.linalg.solve(gram, pseudo_targets.T[:, :, None])[..., 0]  # (A, K)
        return GPPosterior(centres, beta, log_lengthscales, log_signal)


@AGENTS.register("pilco")
class PILCO(TaskAgent):
    """PILCO for a task with a saturating cost PILCO knows (`PILCO_TASKS`)."""

    registry_name = "pilco"
    config_class = PILCOConfig
    display_name = "PILCO"
    streams = ("policy", "act")
    counters = ("episodes", "total_steps", "policy_evaluations")  # predicted trials with gradients, over all improvements

    def build(self) -> None:
        if not np.allclose(self.action_space.low, -self.action_space.high):
            raise ValueError(f"PILCO squashes actions into a symmetric box [-u_max, u_max], got {self.action_space}")
        self.max_action = torch.as_tensor(self.action_space.high, dtype=DTYPE)  # (A,)
        self.model: PILCOModel | None = None
        self.policy: RBFPolicy | None = None
        self.dynamics: ExactGP | None = None
        self.trial_states: list[np.ndarray] = []  # the current trial's next observations, at full precision

    def build_task(self, task_id: str) -> None:
        """Bind the task's cost and build the policy and the GP for its features."""
        if task_id not in PILCO_TASKS:
            raise KeyError(f"PILCO knows no saturating cost for env {task_id!r}; it knows: {', '.join(sorted(PILCO_TASKS))}")
        self.model = PILCOModel(PILCO_TASKS[task_id], self.observation_dim, self.max_action)
        self.policy = RBFPolicy(self.model, self.config.basis_functions, self.config.policy_noise, self.generators["policy"])
        self.dynamics = ExactGP(len(self.model.feature_index) + self.action_dim, self.observation_dim)

    # -- acting and learning ---------------------------------------------------------------------

    def act(self, observation: np.ndarray) -> np.ndarray:
        """(A,) a uniform random action during the first trials, then u_max sin(pi~(features(s)))."""
        if self.episodes < self.config.random_episodes:
            return ((2 * torch.rand(self.action_dim, generator=self.generators["act"], dtype=DTYPE) - 1) * self.max_action).numpy()
        state = torch.as_tensor(np.asarray(observation), dtype=DTYPE)
        with torch.no_grad():
            raw = self.policy.posterior().mean(self.model.features(state)[None])[0]
        return (self.max_action * torch.sin(raw)).numpy()

    def model_data(self) -> tuple[Tensor, Tensor]:
        """Every stored transition as GP inputs (N, F + A) = (features(s), u) and targets (N, S) = s' - s."""
        data = {name: torch.as_tensor(array, dtype=DTYPE) for name, array in self.replay.arrays().items()}
        inputs = torch.cat([self.model.features(data["observations"]), data["actions"]], dim=-1)
        return inputs, data["next_observations"] - data["observations"]

    def fit_model(self) -> dict:
        """Refit the GPs to every stored transition."""
        return self.dynamics.fit(*self.model_data(), self.config.gp_iterations)

    def predicted_cost(self, dynamics: GPPosterior | None = None) -> float:
        """J of the current policy under the current model."""
        with torch.no_grad():
            dynamics = dynamics or self.dynamics.posterior()
            return self.model.trial_cost(self.policy.posterior(), dynamics, self.config.horizon, recompute=False).item()

    def improve_policy(self) -> dict:
        """Minimise J(psi) by L-BFGS with its analytic gradient, from the current policy; keeps the
        best parameters seen (a line search may step into a region where J is not finite)."""
        config = self.config
        dynamics = self.dynamics.posterior()
        recompute = len(dynamics.centres) > config.recompute_above
        parameters = [value.clone().requires_grad_(True) for value in self.policy.parameters()]
        evaluations_cap = config.policy_evaluations
        optimizer = torch.optim.LBFGS(parameters, max_iter=evaluations_cap, max_eval=evaluations_cap, line_search_fn="strong_wolfe")
        best = {"cost": self.predicted_cost(dynamics), "parameters": self.policy.parameters()}
        before, evaluations = best["cost"], 0

        def objective() -> Tensor:
            nonlocal evaluations
            optimizer.zero_grad()
            evaluations += 1
            try:
                cost = self.model.trial_cost(self.policy.posterior(parameters), dynamics, config.horizon, recompute)
                if torch.isfinite(cost):
                    cost.backward()
            except torch.linalg.LinAlgError:  # a covariance lost definiteness: reject this step
                cost = torch.tensor(float("inf"), dtype=DTYPE)
            if not torch.isfinite(cost):
                return torch.tensor(float("inf"), dtype=DTYPE)
            if cost.item() < best["cost"]:
                best.update(cost=cost.item(), parameters=[value.detach().clone() for value in parameters])
            return cost

        optimizer.step(objective)
        self.policy.set_parameters(best["parameters"])
        self.policy_evaluations += evaluations
        return {"cost_before": before, "cost": best["cost"], "evaluations": evaluations}

    def start_episode(self) -> None:
        self.trial_states = []

    def store(self, observation: np.ndarray, action: np.ndarray, reward: float, next_observation: np.ndarray, terminated: bool) -> None:
        super().store(observation, action, reward, next_observation, terminated)
        self.trial_states.append(next_observation)

    def end_episode(self, steps: int) -> dict:
        """Refit the GPs and improve the policy after the trial. The row adds backups (predicted
        trials with gradients so far), model_loss (the GPs' negative log marginal likelihood per
        point), model_loss_before, predicted_cost (J of the improved policy), final_distance (mean
        cost distance over the last `success_steps` steps), success and interaction_seconds."""
        states = torch.as_tensor(np.array(self.trial_states), dtype=DTYPE)
        distances = self.model.cost_distance(states)[-self.config.success_steps :]
        fit = self.fit_model()
        improvement = self.improve_policy()
        return {
            "backups": self.policy_evaluations, "model_loss": fit["loss"], "model_loss_before": fit["loss_before"],
            "predicted_cost": improvement["cost"], "final_distance": distances.mean().item(),
            "success": bool(steps >= self.config.success_steps and (distances < self.config.success_distance).all()),
            "interaction_seconds": self.total_steps * self.model.task.dt,
        }

    # -- checkpoints -----------------------------------------------------------------------------

    def extra_state(self) -> dict[str, np.ndarray]:
        if self.policy is None:
            return {}
        arrays = {f"policy.{name}": value.numpy() for name, value in zip(RBFPolicy.names, self.policy.parameters())}
        arrays["gp.log_hyperparameters"] = self.dynamics.log_hyperparameters.numpy()
        arrays["gp.fitted"] = np.array([self.dynamics.fitted])
        return arrays

    def load_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        if self.policy is None:
            return
        self.policy.set_parameters([torch.from_numpy(arrays[f"policy.{name}"]) for name in RBFPolicy.names])
        self.dynamics.log_hyperparameters = torch.from_numpy(arrays["gp.log_hyperparameters"]).clone()
        self.dynamics.fitted = bool(arrays["gp.fitted"][0])
        if self.dynamics.fitted:
            self.dynamics.set_data(*self.model_data())

    def space_fields(self) -> dict:
        return {"state_dim": self.observation_dim, "max_action": self.max_action.tolist()}

    @classmethod
    def spaces_from_fields(cls, spaces: dict) -> tuple[gym.spaces.Box, gym.spaces.Box]:
        high = np.array(spaces["max_action"], np.float32)
        return gym.spaces.Box(-np.inf, np.inf, (spaces["state_dim"],), np.float64), gym.spaces.Box(-high, high)
