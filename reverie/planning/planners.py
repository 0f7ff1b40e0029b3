"""Planners over continuous action sequences: the Cross-Entropy Method and MPPI.

A planner minimises an energy over action sequences,

    energy_fn(action_sequences)  # (N, H, A) -> (N,), lower is better

batched over N candidate sequences of horizon H and A action dimensions: the L1 distance between a
world model's predicted representation and a goal's (V-JEPA 2-AC [26] Assran et al. 2025), or the
negative predicted return of a dynamics ensemble or latent model (PETS [9] Chua et al. 2018, PlaNet
[10], TD-MPC [15]). One CEM and one MPPI serve all of them, as in mbrl-lib's `planning/`.

- `optimize(energy_fn, init=None) -> PlanResult`: one open-loop search from `init` (H, A) or the
  prior mean (the box centre); the result holds the plan, its energy and the per-iteration trace.
- `plan(energy_fn, init=None) -> (H, A)`: the same, the plan only. Neither touches the warm start.
- `act(energy_fn) -> (A,)`: receding-horizon MPC. Plan, return the first action, and keep the rest of
  the plan shifted by one step and padded with the prior mean as the next call's initial mean (the
  shift trick of PETS and PlaNet). `reset()` at an episode's start forgets it.

A planner comes from `PLANNERS` by name: `make_planner(name, low, high, **fields)` sets its config's
fields directly; `search_config(name, std, **settings)` builds it from planner-independent search
settings (`Config.for_search`: CEM's std is its initial one, with an elite per 8 samples; MPPI's is
its fixed noise), as `reverie plan` does.

Both planners sample around a mean and refit it to the samples; the current mean itself is also
evaluated, in row 0 of every batch (it takes no part in the refit, which would bias MPPI's average
toward it). They return the lowest-energy sequence evaluated (the final mean included), so the
energy reached never rises with iterations and a warm start is never worse than the shifted plan it
starts from. For
noisy energies (PETS's trajectory sampling) set `return_mean=True` to return the final mean instead,
as the papers do, and avoid picking the luckiest sample.

Actions live in a box `low <= a <= high` (A,); every sample is clipped into it, so the plan is always
inside (an infinite bound leaves that side open). Discrete actions are out of scope: enumerate them
or use a policy. All randomness comes from the planner's `torch.Generator` (seeded from `config.seed`
unless one is passed in), and noise drawn on the generator's device is moved to the bounds' device,
so the same seed gives the same samples whatever device the energy runs on. The search runs on the
device and in the dtype of `low`/`high`; energies are moved there from wherever `energy_fn` returns
them, in at least float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from einops import einsum, repeat
from torch import Tensor

from reverie.registry import Registry

EnergyFn = Callable[[Tensor], Tensor]  # action_sequences (N, H, A) -> energy (N,)
PLANNERS: Registry[type["Planner"]] = Registry("planner")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass
class PlanResult:
    actions: Tensor  # (H, A) the plan, inside the action box
    energy: Tensor  # () energy of `actions`
    energy_trace: Tensor  # (iterations,) lowest energy among each iteration's candidates


@dataclass
class PlannerConfig:
    horizon: int = 8  # H, steps per action sequence
    samples: int = 256  # N, sequences per energy call: the current mean and N - 1 samples
    iterations: int = 6
    return_mean: bool = False  # return the final mean, not the best sequence seen (noisy energies)
    seed: int = 0  # seeds the planner's generator when none is passed in

    def __post_init__(self):
        for name, least in (("horizon", 1), ("samples", 2), ("iterations", 1)):
            value = getattr(self, name)
            _require(value >= least, f"planner {name} must be >= {least}, got {value}")

    @classmethod
    def for_search(cls, std: float, **settings: object) -> "PlannerConfig":
        """The config from planner-independent search settings: `std`, the sampling std in action
        units, and fields such as horizon, samples, iterations and seed; each planner says which of
        its fields the std sets. An explicit field in `settings` wins over one derived here."""
        raise NotImplementedError(f"{cls.__name__} does not say which of its fields the sampling std sets")


class Planner:
    """Sampling-based search over a box of continuous action sequences; subclasses refit the
    sampling distribution (`_initial_std`, `_refit`)."""

    Config = PlannerConfig

    def __init__(
        self,
        config: PlannerConfig,
        low: Tensor | Sequence[float],
        high: Tensor | Sequence[float],
        generator: torch.Generator | None = None,
    ):
        low, high = torch.as_tensor(low), torch.as_tensor(high)
        dtype = low.dtype if low.is_floating_point() else torch.get_default_dtype()
        self.low, self.high = low.to(dtype), high.to(low.device, dtype)  # (A,), (A,)
        _require(
            self.low.ndim == 1 and self.low.shape == self.high.shape and bool((self.low <= self.high).all()),
            f"action box: low {tuple(self.low.shape)} and high {tuple(self.high.shape)} must both be (A,) "
            "with low <= high",
        )
        self.config = config
        self.generator = generator if generator is not None else torch.Generator().manual_seed(config.seed)
        self.last: PlanResult | None = None  # the latest `act` search, for diagnostics
        self._warm_mean: Tensor | None = None  # (H, A) the previous plan, shifted by one step

    @property
    def action_dim(self) -> int:
        return self.low.shape[0]

    def prior_mean(self) -> Tensor:
        """(H, A) the box centre (0 on any side with an infinite bound), the search's default start."""
        finite = self.low.isfinite() & self.high.isfinite()
        centre = torch.where(finite, (self.low + self.high) / 2, torch.zeros_like(self.low))
        return repeat(centre.clamp(self.low, self.high), "a -> h a", h=self.config.horizon)

    def reset(self) -> None:
        """Forget the warm start (call at an episode's start). The generator is left as it is."""
        self._warm_mean, self.last = None, None

    def act(self, energy_fn: EnergyFn) -> Tensor:
        """(A,) the first action of a plan warm-started from the previous call's plan."""
        self.last = self.optimize(energy_fn, init=self._warm_mean)
        self._warm_mean = torch.cat([self.last.actions[1:], self.prior_mean()[-1:]])
        return self.last.actions[0]

    def plan(self, energy_fn: EnergyFn, init: Tensor | None = None) -> Tensor:
        """(H, A) the plan alone: the lowest-energy sequence found (or the final mean, see `return_mean`)."""
        return self.optimize(energy_fn, init).actions

    @torch.no_grad()
    def optimize(self, energy_fn: EnergyFn, init: Tensor | None = None) -> PlanResult:
        """Search from `init` (H, A) or the prior mean; see the module docstring."""
        mean = self.prior_mean() if init is None else self._check_init(init)  # (H, A)
        std = torch.full_like(mean, self._initial_std())  # (H, A)
        best_actions, best_energy, trace = mean, torch.tensor(float("inf"), device=mean.device), []
        for _ in range(self.config.iterations):
            candidates = self._sample(mean, std)  # (N, H, A), row 0 = mean
            energy = self._evaluate(energy_fn, candidates)  # (N,)
            index = energy.argmin()
            trace.append(energy[index])
            better = energy[index] < best_energy  # kept on device: no sync per iteration
            best_actions = torch.where(better, candidates[index], best_actions)
            best_energy = torch.where(better, energy[index], best_energy)
            mean, std = self._refit(candidates[1:], energy[1:], mean, std)  # the samples only
            mean = mean.clamp(self.low, self.high)  # a convex combination of samples, up to rounding
        final_energy = self._evaluate(energy_fn, mean[None])[0]
        take_mean = (final_energy <= best_energy) | self.config.return_mean
        return PlanResult(
            actions=torch.where(take_mean, mean, best_actions),
            energy=torch.where(take_mean, final_energy, best_energy),
            energy_trace=torch.stack(trace),
        )

    def _check_init(self, init: Tensor) -> Tensor:
        shape = (self.config.horizon, self.action_dim)
        _require(tuple(init.shape) == shape, f"planner init has shape {tuple(init.shape)}, expected {shape}")
        return init.to(self.low.device, self.low.dtype).clamp(self.low, self.high)

    def _sample(self, mean: Tensor, std: Tensor) -> Tensor:
        """(N, H, A) Gaussian samples around `mean`, clipped into the box, with row 0 = `mean`."""
        shape = (self.config.samples, *mean.shape)
        noise = torch.randn(shape, generator=self.generator, device=self.generator.device, dtype=mean.dtype)
        candidates = (mean + std * noise.to(mean.device)).clamp(self.low, self.high)
        candidates[0] = mean
        return candidates

    @staticmethod
    def _evaluate(energy_fn: EnergyFn, candidates: Tensor) -> Tensor:
        """(N,) energies on the candidates' device; NaN and +inf become the largest finite value."""
        energy = energy_fn(candidates)
        _require(
            isinstance(energy, Tensor) and tuple(energy.shape) == (len(candidates),),
            f"energy_fn returned {tuple(getattr(energy, 'shape', ()))} for {len(candidates)} action "
            f"sequences; expected a tensor of shape ({len(candidates)},)",
        )
        energy = energy.to(candidates.device, torch.promote_types(candidates.dtype, torch.float32))
        largest = torch.finfo(energy.dtype).max
        return energy.nan_to_num(nan=largest, posinf=largest)

    def _initial_std(self) -> float:
        raise NotImplementedError

    def _refit(self, samples: Tensor, energy: Tensor, mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
        """New (mean, std), each (H, A), from `samples` (N - 1, H, A) and their `energy` (N - 1,)."""
        raise NotImplementedError


@dataclass
class CEMConfig(PlannerConfig):
    elites: int = 32  # K, lowest-energy samples the Gaussian is refit to
    init_std: float = 1.0  # in action units, per step and dimension
    min_std: float = 1e-3  # floor that keeps the search from collapsing early
    alpha: float = 0.1  # share of the previous mean and std kept at each refit (0 = plain refit)

    def __post_init__(self):
        super().__post_init__()
        _require(1 <= self.elites < self.samples, f"CEM elites={self.elites} not in [1, {self.samples - 1}]")
        _require(self.init_std > 0, f"CEM init_std must be > 0, got {self.init_std}")
        _require(self.min_std >= 0, f"CEM min_std must be >= 0, got {self.min_std}")
        _require(0 <= self.alpha < 1, f"CEM alpha must be in [0, 1), got {self.alpha}")

    @classmethod
    def for_search(cls, std: float, **settings: object) -> "CEMConfig":
        """The std is the initial one, and K is an eighth of the samples (32 of the default 256)."""
        samples = settings.get("samples", cls.samples)
        return cls(**{"init_std": std, "elites": max(1, samples // 8)} | settings)


@PLANNERS.register("cem")
class CEMPlanner(Planner):
    """Cross-Entropy Method (Rubinstein 1999, "The cross-entropy method for combinatorial and
    continuous optimization"), the planner of PETS (Chua et al. 2018, Sec. 4) and V-JEPA 2-AC
    (Assran et al. 2025, Sec. 4).

    Each iteration samples a ~ N(mu, sigma^2) independently per step and dimension (clipped to the
    box), keeps the K elites of lowest energy and refits with smoothing,
        mu    <- alpha mu + (1 - alpha) mean(elites),
        sigma <- max(alpha sigma + (1 - alpha) std(elites), min_std).
    """

    Config = CEMConfig
    config: CEMConfig

    def _initial_std(self) -> float:
        return self.config.init_std

    def _refit(self, samples: Tensor, energy: Tensor, mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
        elites = samples[energy.topk(self.config.elites, largest=False).indices]  # (K, H, A)
        alpha = self.config.alpha
        mean = alpha * mean + (1 - alpha) * elites.mean(0)
        std = alpha * std + (1 - alpha) * elites.std(0, correction=0)
        return mean, std.clamp_min(self.config.min_std)


@dataclass
class MPPIConfig(PlannerConfig):
    temperature: float = 1.0  # lambda: lower follows the best samples more greedily
    noise_std: float = 0.5  # in action units, fixed across iterations

    def __post_init__(self):
        super().__post_init__()
        _require(self.temperature > 0, f"MPPI temperature must be > 0, got {self.temperature}")
        _require(self.noise_std > 0, f"MPPI noise_std must be > 0, got {self.noise_std}")

    @classmethod
    def for_search(cls, std: float, **settings: object) -> "MPPIConfig":
        """The std is the fixed noise std."""
        return cls(**{"noise_std": std} | settings)


@PLANNERS.register("mppi")
class MPPIPlanner(Planner):
    """Model Predictive Path Integral control (Williams et al. 2017, "Information theoretic MPC for
    model-based reinforcement learning", ICRA, Alg. 2), run for several iterations as in TD-MPC.

    Each iteration samples a_n = mu + eps_n, eps_n ~ N(0, noise_std^2) (clipped to the box), and
    moves the mean to the exponentially weighted average
        w_n = softmax_n(-(E_n - min_m E_m) / lambda),  mu <- sum_n w_n a_n.
    The paper's control-cost term lambda u^T Sigma^-1 eps is left out (as in TD-MPC and mbrl-lib);
    put an action penalty in the energy where one is wanted.
    """

    Config = MPPIConfig
    config: MPPIConfig

    def _initial_std(self) -> float:
        return self.config.noise_std

    def _refit(self, samples: Tensor, energy: Tensor, mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
        weights = torch.softmax(-(energy - energy.min()) / self.config.temperature, dim=0)  # (N - 1,)
        return einsum(weights.to(samples.dtype), samples, "n, n h a -> h a"), std


def make_planner(
    name: str,
    low: Tensor | Sequence[float],
    high: Tensor | Sequence[float],
    generator: torch.Generator | None = None,
    **config: object,
) -> Planner:
    """A registered planner by name, its config built from keyword overrides (e.g. `horizon=5`)."""
    planner_class = PLANNERS.get(name)
    return planner_class(planner_class.Config(**config), low, high, generator)


def search_config(name: str, std: float, **settings: object) -> PlannerConfig:
    """A registered planner's config from the search settings (`PlannerConfig.for_search`)."""
    return PLANNERS.get(name).Config.for_search(std, **settings)
