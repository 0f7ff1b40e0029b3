"""reverie's gymnasium environments, registered when `reverie.envs` is first imported.

Entry points are strings, so registering imports no simulator; an env's module loads when the env
is made. `make_env` (`reverie.envs.make`) imports this package, and so does every module that
makes one of these envs:

- `reverie/DynaMaze-v0`, `reverie/BlockingMaze-v0`, `reverie/ShortcutMaze-v0`: the grid mazes of
  Sutton & Barto ch. 8 (`gridworlds`);
- `reverie/CartpoleSwingup-v0`: the continuous cart-pole swing-up of PETS [9] (`cartpole_swingup`);
- `reverie/PilcoCartpole-v0`: PILCO's cart-pole swing-up [3] (`pilco_cartpole`);
- `reverie/ReacherJoints-v0`: MuJoCo's Reacher arm under a joint-position controller
  (`reacher_joints`), the quickstart's robot;
- `reverie/GoalGrid-v0`: a deterministic goal-reaching room seen only in pixels, the goal given as
  an image or a text, for UniPi's video policies [22] (`goal_grid`);
- `reverie/WorldModel-v0`: a learned simulator, any generative world model's folder stepped as an
  env (`learned`), with a batched vector env behind `gym.make_vec`.
"""

import os

import gymnasium as gym

# MuJoCo picks its GL backend when it is first imported: reverie renders off-screen (EGL), and
# pygame-drawn envs draw without a window, unless the user chose otherwise.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

ENVS = {  # id: (entry point, gym.register keywords)
    "reverie/DynaMaze-v0": ("reverie.envs.gridworlds:dyna_maze", {}),
    "reverie/BlockingMaze-v0": ("reverie.envs.gridworlds:blocking_maze", {}),
    "reverie/ShortcutMaze-v0": ("reverie.envs.gridworlds:shortcut_maze", {}),
    "reverie/CartpoleSwingup-v0": ("reverie.envs.cartpole_swingup:CartpoleSwingupEnv", {"max_episode_steps": 200}),
    "reverie/PilcoCartpole-v0": ("reverie.envs.pilco_cartpole:PilcoCartpoleEnv", {"max_episode_steps": 40}),
    "reverie/ReacherJoints-v0": ("reverie.envs.reacher_joints:ReacherJointsEnv", {"max_episode_steps": 50}),
    "reverie/GoalGrid-v0": ("reverie.envs.goal_grid:GoalGridEnv", {"max_episode_steps": 12}),
    "reverie/WorldModel-v0": ("reverie.envs.learned:WorldModelEnv", {"max_episode_steps": 1000, "vector_entry_point": "reverie.envs.learned:WorldModelVectorEnv"}),
}

for env_id, (entry_point, keywords) in ENVS.items():
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, **keywords)
