"""The IRIS agent ([14] Micheli et al. 2023) on one Atari game at a CPU budget: the real-env return
of its actor, trained only in the imagination of its discrete autoencoder and transformer, against
random play and the best single action held for a whole game (`atari_runs.py`), with the paper's
Atari 100k scores beside them (`atari_runs.PUBLISHED`: Asterix 853.6, Pong 14.6, Breakout 83.7,
Boxing 70.1).

The paper's budget is 100k real steps with 200 updates of each part per 200 steps, 64 x 64 frames
of 16 tokens and a 10-block transformer over 20 frames: days on 2 CPU cores. `CPU` below is what
fits in about an hour on one core: 32 x 32 frames, still of 4 x 4 tokens from 512 codes, a 2-block
transformer of width 128 over 8 frames, batches of 16 windows, the actor-critic burned in on 7
frames and dreaming H = 10 steps (the paper: 20 and 20), and 100 autoencoder, 80 world-model and
40 actor-critic updates per 200 real steps (starting at epochs 0, 1 and 3), to 10k real steps.
The loss is the paper's (gamma 0.995, lambda 0.95, entropy 0.001).

Asterix is the game, as for DIAMOND (`diamond.py`): random play meets a reward about every 35
steps and a training episode (one life) lasts about 100.

    .venv/bin/python benchmarks/agents/iris.py --threads 1          # seed 0, Asterix, the CPU budget
    .venv/bin/python benchmarks/agents/iris.py --report

Results: benchmarks/results/iris.json and iris_GAME.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import atari_runs  # noqa: E402
from reverie.agents.iris import Iris  # noqa: E402

NAME = "iris"
CPU = dict(
    frame_size=32, actor_channels=[16, 32, 32], lstm=256, first_epoch_steps=1000, steps_per_epoch=200, batch_size=16,
    tokenizer_channels=[32, 32, 64], code_width=64, codebook_size=512, tokenizer_batch_size=64, tokenizer_start_epoch=0,
    tokenizer_updates=100, width=128, depth=2, heads=4, window=8, world_model_start_epoch=1, world_model_updates=80,
    actor_start_epoch=3, actor_updates=40, burn_in=8, horizon=10,
)  # fmt: skip


if __name__ == "__main__":
    atari_runs.benchmark(NAME, Iris, {"cpu": CPU}, __doc__)
