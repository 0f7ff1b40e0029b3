"""Play a generative world model: `reverie play MODEL_DIR`.

A trained world model is a game you can play. Genie [18] (Bruce et al. 2024) is played with its
latent actions, |A| = 8 of them learned from unlabeled video, chosen by the player each frame, and
starts from an image it was never trained on (even a sketch); Genie 2 [19] is prompted with one
image. GameNGen [23] (Valevski et al. 2024, DOOM) and DIAMOND [16] (Alonso et al. 2024, Atari and
CS:GO) are models trained on a game's real actions that people play with the game's own keys.
This package does both for every model behind reverie's world-model interface
(`reverie.nn.world_model`: pixel and latent diffusion, token models, Genie's MaskGIT dynamics, the
last-frame baseline):

- it starts the model from one frame: a prompt image of any size, resized to the model's frames,
  or the first real frame of recorded episode shards (`start_frames`);
- it steps the model continuously, as fast as it goes or at an FPS cap, with the action of the keys
  held down, or an idle action when none is (`session`, `keys`): Genie's latent actions on the
  digit keys, a model of real actions on its env's keys (`--env`, e.g. ale-py's w a s d + space)
  once the env's action count is checked to be the model's;
- it shows the frames upscaled with the live FPS in a pygame window (`window`), or runs without
  one on a given action sequence (`--headless --actions 0,1,1,3`), and in either case can write
  the frames as an mp4 and a JSON report of the session (`recording`, `run`).

How each model's frame size and action space are read from its config is in `playable`: discrete
and multi-discrete action spaces are played (the latter as its joint actions), continuous ones are
refused.
"""

from reverie.play.playable import Playable, PlayError, load_playable
from reverie.play.run import PlayConfig, run_play

__all__ = ["PlayConfig", "PlayError", "Playable", "load_playable", "run_play"]
