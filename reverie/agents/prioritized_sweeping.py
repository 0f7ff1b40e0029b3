"""Prioritized sweeping: Dyna planning ordered by how much each update would change a value.

[2] Moore & Atkeson 1993, "Prioritized sweeping: reinforcement learning with less data and less
real time", Machine Learning 13; Peng & Williams 1993 (not in the survey) had the same idea as
"queue-Dyna". Implemented as the deterministic-environment box of Sutton & Barto 2018, Sec. 8.4. Every real step (S, A, R, S'):

    Model(S,A) <- R, S'
    P <- |R + gamma max_a Q(S',a) - Q(S,A)|;  if P > theta, put (S,A) in the queue with priority P
    n times, while the queue is not empty:
        S, A <- the pair of highest priority (removed from the queue);  R, S' <- Model(S,A)
        Q(S,A) <- Q(S,A) + alpha [R + gamma max_a Q(S',a) - Q(S,A)]
        for every (S-, A-) the model predicts leads to S, with reward R-:
            P <- |R- + gamma max_a Q(S,a) - Q(S-,A-)|;  if P > theta, queue (S-,A-) with priority P

A pair already queued keeps the higher of its two priorities. There is no direct Q update from the
real step: all backups are the queue's. Acting, the model and checkpoints are Dyna-Q's
(reverie.agents.dyna).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from reverie.agents.dyna import DynaQ, DynaQConfig
from reverie.agents.registry import AGENTS


@dataclass
class PrioritizedSweepingConfig(DynaQConfig):
    theta: float = 1e-4  # smallest priority worth queueing


@AGENTS.register("prioritized_sweeping")
class PrioritizedSweeping(DynaQ):
    """Tabular prioritized sweeping for a deterministic environment."""

    registry_name = "prioritized_sweeping"
    config_class = PrioritizedSweepingConfig

    def __init__(self, config: PrioritizedSweepingConfig, observation_space: gym.Space, action_space: gym.Space):
        super().__init__(config, observation_space, action_space)
        self.predecessors: dict[int, set[tuple[int, int]]] = {}  # next state -> pairs the model sends there
        self.queued: dict[tuple[int, int], float] = {}  # (state, action) -> its priority in the queue
        self._heap: list[tuple[float, int, int]] = []  # (-priority, state, action); entries not in `queued` are stale

    def observe(self, state: int, action: int, reward: float, next_state: int, done: bool) -> None:
        previous = int(self.model_next[state, action])
        if previous not in (-1, next_state):
            self.predecessors[previous].discard((state, action))  # a changing world: the old edge is gone
        super().observe(state, action, reward, next_state, done)
        self.predecessors.setdefault(next_state, set()).add((state, action))

    def push(self, state: int, action: int, priority: float) -> None:
        if priority > self.config.theta and priority > self.queued.get((state, action), 0.0):
            self.queued[(state, action)] = priority
            heapq.heappush(self._heap, (-priority, state, action))

    def pop(self) -> tuple[int, int] | None:
        while self._heap:
            negative_priority, state, action = heapq.heappop(self._heap)
            if self.queued.get((state, action)) == -negative_priority:
                del self.queued[(state, action)]
                return state, action
        return None

    def plan(self) -> None:
        for _ in range(self.config.planning_steps):
            pair = self.pop()
            if pair is None:
                return
            state, action = pair
            self.backup(state, action, *self.modelled(state, action))
            for previous_state, previous_action in self.predecessors.get(state, ()):
                self.push(previous_state, previous_action, abs(self.td_error(previous_state, previous_action, *self.modelled(previous_state, previous_action))))

    def learn(self, state: int, action: int, reward: float, next_state: int, done: bool) -> None:
        self.observe(state, action, reward, next_state, done)
        self.push(state, action, abs(self.td_error(state, action, reward, next_state, done)))
        self.plan()

    def state_dict(self) -> dict[str, np.ndarray]:
        pairs = sorted(self.queued)
        return {
            **super().state_dict(),
            "queue_pairs": np.array(pairs, np.int64).reshape(-1, 2),
            "queue_priorities": np.array([self.queued[pair] for pair in pairs], np.float64),
        }

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_state_dict(arrays)
        self.predecessors = {}
        for state, action in self.observed_pairs:
            self.predecessors.setdefault(int(self.model_next[state, action]), set()).add((state, action))
        pairs = [tuple(pair) for pair in arrays["queue_pairs"].tolist()]
        self.queued = dict(zip(pairs, arrays["queue_priorities"].tolist()))
        self._heap = [(-priority, state, action) for (state, action), priority in self.queued.items()]
        heapq.heapify(self._heap)
