"""The DIAMOND agent ([16] Alonso et al. 2024) on one Atari game at a CPU budget: the real-env
return of its actor, trained only in the dreams of its diffusion world model, against random play
and the best single action held for a whole game (`atari_runs.py`), with the paper's Atari 100k
scores beside them (`atari_runs.PUBLISHED`: Asterix 3698.5, Pong 20.4, Breakout 132.5, Boxing 86.9).

The paper's budget is 100k real steps with 400 updates of each of its three models per 100 steps
and 64 x 64 frames: days on 2 CPU cores. `CPU` below is what fits in about an hour on one core:
32 x 32 frames, a three-level U-Net of 32 channels with one ResBlock a level, one Euler step per
dreamed frame, batch 16, a first epoch of 1500 world-model, 1000 reward-model and 100 actor-critic
updates after 2000 random steps, then 40, 40 and 30 updates per 200 real steps, to 10k real steps.
The imagination itself is the paper's (H = 15, gamma 0.985, lambda 0.95, entropy 0.001).

Asterix is the game: random play already meets a reward about every 35 steps, so the first
epoch's models see rewards, and a training episode (one life) lasts about 100 steps. On RoadRunner
random play scores about once in 2000 steps, too rarely for this budget (its run is kept in the
results under its own key).

    .venv/bin/python benchmarks/agents/diamond.py --threads 1          # seed 0, Asterix, the CPU budget
    .venv/bin/python benchmarks/agents/diamond.py --settings longer_world_model --steps 8000
    .venv/bin/python benchmarks/agents/diamond.py --game ALE/RoadRunner-v5 --seeds 0 1
    .venv/bin/python benchmarks/agents/diamond.py --report

Results: benchmarks/results/diamond.json and diamond_GAME.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import atari_runs  # noqa: E402
from reverie.agents.diamond import Diamond  # noqa: E402

NAME = "diamond"
CPU = dict(
    frame_size=32, channels=[32, 32, 32], res_blocks=1, cond_channels=128, denoising_steps=1, batch_size=16,
    actor_channels=[16, 32, 32], lstm=256, first_epoch_steps=2000, steps_per_epoch=200,
    first_world_model_updates=1500, world_model_updates=40, first_reward_updates=1000, reward_updates=40,
    first_actor_updates=100, actor_updates=30,
)  # fmt: skip
# The dreams of `CPU` lose the player within a few steps (diamond_Asterix_dreams.png): more world-model
# updates (4000 first, then 80 an epoch) and dreams of H = 8 steps, to 8k real steps.
LONGER_WORLD_MODEL = CPU | dict(first_world_model_updates=4000, world_model_updates=80, horizon=8)


if __name__ == "__main__":
    atari_runs.benchmark(NAME, Diamond, {"cpu": CPU, "longer_world_model": LONGER_WORLD_MODEL}, __doc__)
