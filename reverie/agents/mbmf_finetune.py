"""MB-MF, the model-free part: imitate the MPC controller with a policy network, then fine-tune that
policy with a model-free learner.

[6] Nagabandi et al. 2018, "Neural Network Dynamics for Model-Based Deep Reinforcement Learning
with Model-Free Fine-Tuning", ICRA, Sec. V:

- Imitation (Sec. V-A): a Gaussian MLP policy pi_phi(a | s) = N(mu_phi(s), diag(exp(2 log_std)))
  is trained by behavioural cloning on the MPC expert's state-action pairs,

      min_phi 1/2 sum_{(s, a*) in D*} |a* - mu_phi(s)|^2,

  and improved with DAgger (Ross et al. 2011): execute pi_phi, ask the expert (the random-shooting
  controller of `reverie.agents.mbmf`) for its action at the visited states, add those pairs to D*
  and refit. D* starts as the MPC rollouts of the model-based phase (D_RL).
- Fine-tuning (Sec. V-B): the paper runs TRPO from the imitation policy; here stable-baselines3's
  PPO starts from it. The policy's input normalisation is folded into its first layer, and its
  weights are copied into PPO's actor (`MlpPolicy` with the same tanh layers); PPO's critic starts
  from scratch. The policy's std at the start of fine-tuning is `FinetuneConfig.log_std`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from reverie.agents.mbmf import MBMF


@dataclass
class FinetuneConfig:
    hidden: int = 64  # stable-baselines3's MlpPolicy default, so the actor's weights copy over
    layers: int = 2  # tanh hidden layers
    learning_rate: float = 1e-3
    batch_size: int = 256
    epochs: int = 30  # behavioural-cloning passes over D* after each DAgger rollout
    dagger_iterations: int = 3  # policy rollouts labelled by the MPC expert
    label_every: int = 1  # label every n-th visited state (the expert's search is the cost)
    log_std: float = -1.0  # log std of the policy handed to PPO
    seed: int = 0


class GaussianMLPPolicy(nn.Module):
    """mu_phi(s): a tanh MLP on normalised observations, and a state-independent log std."""

    def __init__(self, observation_dim: int, action_dim: int, hidden: int, layers: int, log_std: float):
        super().__init__()
        widths = [observation_dim] + [hidden] * layers
        self.body = nn.Sequential(*[module for a, b in zip(widths[:-1], widths[1:]) for module in (nn.Linear(a, b), nn.Tanh())])
        self.mean_head = nn.Linear(widths[-1], action_dim)
        self.log_std = nn.Parameter(torch.full((action_dim,), log_std))
        self.register_buffer("observation_mean", torch.zeros(observation_dim))
        self.register_buffer("observation_std", torch.ones(observation_dim))

    def forward(self, observations: Tensor) -> Tensor:
        """(..., A) mean action of raw `observations` (..., D)."""
        return self.mean_head(self.body((observations - self.observation_mean) / self.observation_std))

    def loss(self, observations: Tensor, expert_actions: Tensor) -> Tensor:
        """Behavioural cloning: 1/2 |a* - mu(s)|^2, averaged over the batch."""
        return 0.5 * ((self(observations) - expert_actions) ** 2).sum(-1).mean()

    def set_normaliser(self, observations: Tensor) -> None:
        std = observations.std(0, correction=0)
        self.observation_mean.copy_(observations.mean(0))
        self.observation_std.copy_(torch.where(std < 1e-6, torch.ones_like(std), std))


def behavioural_cloning(policy: GaussianMLPPolicy, observations: Tensor, expert_actions: Tensor, config: FinetuneConfig, generator: torch.Generator) -> list[float]:
    """Fit mu_phi to the expert pairs for `config.epochs` passes; the mean loss of each pass."""
    policy.set_normaliser(observations)
    optimizer = torch.optim.Adam([parameter for name, parameter in policy.named_parameters() if name != "log_std"], lr=config.learning_rate)
    epoch_losses = []
    for _ in range(config.epochs):
        order = torch.randperm(len(observations), generator=generator)
        losses = []
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            loss = policy.loss(observations[rows], expert_actions[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        epoch_losses.append(float(np.mean(losses)))
    return epoch_losses


def imitate(expert: MBMF, env: gym.Env, config: FinetuneConfig, on_episode: Callable[[dict], None] | None = None) -> tuple[GaussianMLPPolicy, list[dict]]:
    """DAgger of the MPC `expert` into a Gaussian MLP policy, starting from its MPC rollouts (D_RL).
    Each of `config.dagger_iterations` rollouts runs the policy's mean action (reset with seed
    `expert.config.seed + expert.episodes + i`) and counts as real steps. Returns the policy and
    one row per rollout: episode, return, steps, total_steps (after the expert's), bc_loss."""
    mpc_data = expert.rl_data.arrays()
    observations = torch.as_tensor(mpc_data["observations"])
    expert_actions = torch.as_tensor(mpc_data["actions"])
    if not len(observations):
        raise ValueError("imitate needs the expert's MPC rollouts: train the MBMF agent past its random episodes first")
    generator = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        policy = GaussianMLPPolicy(observations.shape[1], expert_actions.shape[1], config.hidden, config.layers, config.log_std)
    low, high = expert.low.numpy(), expert.high.numpy()
    total_steps, rows = expert.total_steps, []
    for iteration in range(config.dagger_iterations):
        bc_loss = behavioural_cloning(policy, observations, expert_actions, config, generator)[-1]
        observation, _ = env.reset(seed=expert.config.seed + expert.episodes + iteration)
        visited, episode_return, done = [], 0.0, False
        while not done:
            visited.append(observation)
            with torch.no_grad():
                action = policy(torch.as_tensor(observation, dtype=torch.float32)).numpy().clip(low, high)
            observation, reward, terminated, truncated, _ = env.step(action)
            episode_return += float(reward)
            done = terminated or truncated
        total_steps += len(visited)
        labelled = visited[:: config.label_every]
        observations = torch.cat([observations, torch.as_tensor(np.array(labelled), dtype=torch.float32)])
        expert_actions = torch.cat([expert_actions, torch.as_tensor(np.array([expert.mpc_action(state) for state in labelled]))])
        row = {"episode": iteration + 1, "return": episode_return, "steps": len(visited), "total_steps": total_steps, "bc_loss": bc_loss}
        rows.append(row)
        if on_episode is not None:
            on_episode(row)
    behavioural_cloning(policy, observations, expert_actions, config, generator)
    return policy, rows


@torch.no_grad()
def copy_into_sb3_actor(policy: GaussianMLPPolicy, sb3_policy: nn.Module) -> None:
    """Load mu_phi and log std into a stable-baselines3 `ActorCriticPolicy` with the same tanh
    layers, folding the input normalisation into the first layer:
        W ((s - m) / s_std) + b = (W / s_std) s + (b - W (m / s_std))."""
    sb3_layers = [module for module in sb3_policy.mlp_extractor.policy_net if isinstance(module, nn.Linear)]
    own_layers = [module for module in policy.body if isinstance(module, nn.Linear)]
    if [layer.weight.shape for layer in sb3_layers] != [layer.weight.shape for layer in own_layers]:
        raise ValueError(f"PPO actor layers {[tuple(layer.weight.shape) for layer in sb3_layers]} differ from the imitation policy's {[tuple(layer.weight.shape) for layer in own_layers]}")
    first, scale = own_layers[0], 1 / policy.observation_std
    sb3_layers[0].weight.copy_(first.weight * scale)
    sb3_layers[0].bias.copy_(first.bias - first.weight @ (policy.observation_mean * scale))
    for target, source in zip(sb3_layers[1:] + [sb3_policy.action_net], own_layers[1:] + [policy.mean_head]):
        target.weight.copy_(source.weight)
        target.bias.copy_(source.bias)
    sb3_policy.log_std.copy_(policy.log_std)


def ppo_from_policy(policy: GaussianMLPPolicy, env: gym.Env, seed: int, **ppo_kwargs):
    """A stable-baselines3 PPO whose actor starts as `policy` (critic from scratch)."""
    from stable_baselines3 import PPO

    net_arch = [policy.mean_head.in_features] * sum(isinstance(module, nn.Linear) for module in policy.body)
    policy_kwargs = {"net_arch": {"pi": net_arch, "vf": [64, 64]}, "activation_fn": nn.Tanh, "log_std_init": float(policy.log_std.detach().mean())}
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", policy_kwargs=policy_kwargs, verbose=0, **ppo_kwargs)
    copy_into_sb3_actor(policy, model.policy)
    return model
