"""Dyna-Q and Dyna-Q+: Q-learning plus planning with a learned tabular model.

[1] Sutton 1990, "Integrated architectures for learning, planning, and reacting based on
approximating dynamic programming", ICML; as written in Sutton & Barto 2018 (not in the survey),
Reinforcement Learning: An Introduction, 2nd ed., ch. 8 (the Tabular Dyna-Q box of Sec. 8.2,
Dyna-Q+ in Sec. 8.3). Every real step (S, A, R, S'):

    direct RL         Q(S,A) <- Q(S,A) + alpha [R + gamma max_a Q(S',a) - Q(S,A)]
    model learning    Model(S,A) <- R, S'                          (a deterministic environment)
    planning, n times S <- a random previously observed state, A <- a random action tried in S,
                      R, S' <- Model(S,A), and the same Q update

Dyna-Q+ plans with the reward R + kappa sqrt(tau), tau the number of real steps since (S,A) was
last tried, and over every action of an observed state: an action never tried there is modelled as
leaving the state unchanged with reward 0. Actions are epsilon-greedy, ties broken at random.

`PrioritizedSweeping` (reverie.agents.prioritized_sweeping) reuses this agent and changes only the
order of the planning updates.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np

from reverie.agents.registry import AGENTS, read_checkpoint, write_checkpoint


@dataclass
class DynaQConfig:
    alpha: float = 0.1  # step size
    epsilon: float = 0.1  # exploration rate
    gamma: float = 0.95  # discount
    planning_steps: int = 5  # n: planning updates per real step
    seed: int = 0


@dataclass
class DynaQPlusConfig(DynaQConfig):
    kappa: float = 1e-3  # weight of the exploration bonus kappa * sqrt(tau)


def _discrete_size(space: gym.Space, what: str) -> int:
    if not isinstance(space, gym.spaces.Discrete):
        raise TypeError(f"tabular agents need a Discrete {what} space, got {space}")
    return int(space.n)


@AGENTS.register("dyna_q")
class DynaQ:
    """Tabular Dyna-Q for a deterministic environment with Discrete observations and actions."""

    registry_name = "dyna_q"
    config_class = DynaQConfig

    def __init__(self, config: DynaQConfig, observation_space: gym.Space, action_space: gym.Space):
        self.config = config
        self.num_states = _discrete_size(observation_space, "observation")
        self.num_actions = _discrete_size(action_space, "action")
        shape = (self.num_states, self.num_actions)
        self.q = np.zeros(shape)  # (states, actions) action values
        self.model_next = np.full(shape, -1, np.int64)  # (states, actions) modelled next state; -1: no model
        self.model_reward = np.zeros(shape)  # (states, actions) modelled reward
        self.model_done = np.zeros(shape, bool)  # (states, actions) modelled episode end
        self.observed_pairs: list[tuple[int, int]] = []  # (state, action) in the order first tried
        self.observed_states: list[int] = []  # in the order first left
        self.tried_actions: dict[int, list[int]] = {}  # state -> actions tried there
        # Separate streams for acting and planning: with Q all zero until the first goal, the first
        # episode is the same whatever the number of planning steps (as in the book's Figure 8.2).
        self.act_rng = random.Random(f"act-{config.seed}")
        self.plan_rng = random.Random(f"plan-{config.seed}")
        self.episodes = 0  # finished episodes
        self.total_steps = 0  # real environment steps
        self.backups = 0  # Q-value updates, real and planned

    # -- acting and learning ---------------------------------------------------------------------

    def act(self, state: int, explore: bool = True) -> int:
        """Epsilon-greedy (greedy with `explore=False`), ties among the best actions broken at random."""
        if explore and self.act_rng.random() < self.config.epsilon:
            return self.act_rng.randrange(self.num_actions)
        values = self.q[state].tolist()
        best = max(values)
        return self.act_rng.choice([action for action, value in enumerate(values) if value == best])

    def td_error(self, state: int, action: int, reward: float, next_state: int, done: bool) -> float:
        target = reward if done else reward + self.config.gamma * max(self.q[next_state].tolist())
        return target - self.q[state, action]

    def backup(self, state: int, action: int, reward: float, next_state: int, done: bool) -> None:
        """One Q-learning update toward reward + gamma max_a Q(next_state, a)."""
        self.q[state, action] += self.config.alpha * self.td_error(state, action, reward, next_state, done)
        self.backups += 1

    def observe(self, state: int, action: int, reward: float, next_state: int, done: bool) -> None:
        """Model learning: remember what (state, action) did last time it was tried."""
        if state not in self.tried_actions:
            self.observed_states.append(state)
            self.tried_actions[state] = []
        if action not in self.tried_actions[state]:
            self.tried_actions[state].append(action)
            self.observed_pairs.append((state, action))
        self.model_next[state, action] = next_state
        self.model_reward[state, action] = reward
        self.model_done[state, action] = done

    def modelled(self, state: int, action: int) -> tuple[float, int, bool]:
        return float(self.model_reward[state, action]), int(self.model_next[state, action]), bool(self.model_done[state, action])

    def plan(self) -> None:
        for _ in range(self.config.planning_steps):
            state = self.plan_rng.choice(self.observed_states)
            action = self.plan_rng.choice(self.tried_actions[state])
            self.backup(state, action, *self.modelled(state, action))

    def learn(self, state: int, action: int, reward: float, next_state: int, done: bool) -> None:
        """Direct RL, model learning and planning for one real step."""
        self.backup(state, action, reward, next_state, done)
        self.observe(state, action, reward, next_state, done)
        self.plan()

    def train(
        self,
        env: gym.Env,
        episodes: int | None = None,
        steps: int | None = None,
        until: Callable[["DynaQ"], bool] | None = None,
        on_episode: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Run until `episodes` episodes or `steps` real steps have been taken in all (counting any
        before a resume), or until `until(agent)` holds after a step. Returns one row per finished
        episode: episode, return, steps, total_steps, backups; `on_episode` gets each as it ends.
        Episode i is reset with seed `config.seed + i`, so a resumed run sees the same episodes.
        """
        if episodes is None and steps is None and until is None:
            raise ValueError("train needs a budget: episodes, steps or until")
        rows = []
        while episodes is None or self.episodes < episodes:
            state, _ = env.reset(seed=self.config.seed + self.episodes)
            episode_return, episode_steps, done, stop = 0.0, 0, False, False
            while not (done or stop):
                if steps is not None and self.total_steps >= steps:
                    return rows
                action = self.act(state)
                next_state, reward, terminated, truncated, _ = env.step(action)
                self.total_steps += 1
                self.learn(state, action, float(reward), int(next_state), bool(terminated))
                episode_return += float(reward)
                episode_steps += 1
                state, done = int(next_state), terminated or truncated
                stop = until is not None and until(self)
            if not done:
                return rows
            self.episodes += 1
            row = {"episode": self.episodes, "return": episode_return, "steps": episode_steps, "total_steps": self.total_steps, "backups": self.backups}
            rows.append(row)
            if on_episode is not None:
                on_episode(row)
            if stop:
                return rows
        return rows

    def greedy_action(self, state: int) -> int:
        """The first best action: a deterministic greedy policy, for evaluation."""
        return int(np.argmax(self.q[state]))

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        return {
            "q": self.q,
            "model_next": self.model_next,
            "model_reward": self.model_reward,
            "model_done": self.model_done,
            "observed_pairs": np.array(self.observed_pairs, np.int64).reshape(-1, 2),
            "act_rng_state": np.array(self.act_rng.getstate()[1], np.int64),
            "plan_rng_state": np.array(self.plan_rng.getstate()[1], np.int64),
            "counters": np.array([self.episodes, self.total_steps, self.backups], np.int64),
        }

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        self.q = arrays["q"].astype(np.float64)
        self.model_next = arrays["model_next"].astype(np.int64)
        self.model_reward = arrays["model_reward"].astype(np.float64)
        self.model_done = arrays["model_done"].astype(bool)
        self.observed_pairs, self.observed_states, self.tried_actions = [], [], {}
        for state, action in arrays["observed_pairs"].tolist():
            if state not in self.tried_actions:
                self.observed_states.append(state)
                self.tried_actions[state] = []
            self.tried_actions[state].append(action)
            self.observed_pairs.append((state, action))
        self.act_rng.setstate((random.Random.VERSION, tuple(arrays["act_rng_state"].tolist()), None))
        self.plan_rng.setstate((random.Random.VERSION, tuple(arrays["plan_rng_state"].tolist()), None))
        self.episodes, self.total_steps, self.backups = arrays["counters"].tolist()

    def save(self, path: str | Path) -> Path:
        """Write the agent to one safetensors file, atomically (a temporary name, then a rename)."""
        spaces = [self.num_states, self.num_actions]
        return write_checkpoint(path, self.registry_name, self.state_dict(), config=asdict(self.config), spaces=spaces)

    @classmethod
    def load(cls, path: str | Path) -> "DynaQ":
        arrays, fields = read_checkpoint(path, cls.registry_name)
        num_states, num_actions = fields["spaces"]
        agent = cls(cls.config_class(**fields["config"]), gym.spaces.Discrete(num_states), gym.spaces.Discrete(num_actions))
        agent.load_state_dict(arrays)
        return agent


@AGENTS.register("dyna_q_plus")
class DynaQPlus(DynaQ):
    """Dyna-Q+: Dyna-Q whose planning rewards long-untried actions with kappa * sqrt(tau)."""

    registry_name = "dyna_q_plus"
    config_class = DynaQPlusConfig

    def __init__(self, config: DynaQPlusConfig, observation_space: gym.Space, action_space: gym.Space):
        super().__init__(config, observation_space, action_space)
        self.last_tried = np.zeros((self.num_states, self.num_actions), np.int64)  # (states, actions) real step of the last try

    def observe(self, state: int, action: int, reward: float, next_state: int, done: bool) -> None:
        if state not in self.tried_actions:
            self.model_next[state] = state  # untried actions: modelled as staying put with reward 0
        super().observe(state, action, reward, next_state, done)
        self.last_tried[state, action] = self.total_steps

    def plan(self) -> None:
        for _ in range(self.config.planning_steps):
            state = self.plan_rng.choice(self.observed_states)
            action = self.plan_rng.randrange(self.num_actions)
            reward, next_state, done = self.modelled(state, action)
            bonus = self.config.kappa * math.sqrt(self.total_steps - self.last_tried[state, action])
            self.backup(state, action, reward + bonus, next_state, done)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {**super().state_dict(), "last_tried": self.last_tried}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_state_dict(arrays)
        self.last_tried = arrays["last_tried"].astype(np.int64)
