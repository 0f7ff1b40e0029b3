"""Make gymnasium environments that render frames: classic control, MuJoCo (off-screen), ale-py
Atari, gym-pusht and reverie's own (`reverie.envs`), importing the package that registers each
only when it is asked for."""

from __future__ import annotations


import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator
from PIL import Image

from reverie.shards.geometry import FrameGeometry


def _register_for(env_id: str) -> None:
    if env_id.startswith("ALE/"):
        import ale_py

        gym.register_envs(ale_py)
    if "pusht" in env_id.lower():
        import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)


class ForgetLastActionOnReset(gym.Wrapper):
    """gym-pusht draws the last action's target in every frame and keeps it across `reset`, so the
    first frame of an episode would show the previous episode's final action."""

    def reset(self, **kwargs):
        self.env.unwrapped._last_action = None
        return self.env.reset(**kwargs)


# Cameras chosen per env (by a name in the id) where the env's own view wastes the frame: Reacher's
# default looks at its arena from 1.9 m at 45 degrees, leaving the arm about 10 px long in a 64 px
# frame; from 0.6 m straight above, the arm's whole reach (0.21 m) fills the frame (about 28 px).
CAMERAS = {
    "Reacher": {"lookat": (0.0, 0.0, 0.0), "distance": 0.6, "azimuth": 90.0, "elevation": -90.0},
}


def _chosen_camera(env_id: str) -> dict | None:
    for name, pose in CAMERAS.items():
        if name.lower() in env_id.lower():
            return {key: np.asarray(value, dtype=np.float64) if isinstance(value, tuple) else value for key, value in pose.items()}
    return None


def _pinned_camera(env: gym.Env) -> dict:
    """The env's camera pose spelled out in full. MuJoCo's free camera drifts with what it has
    rendered before, so without this an episode's frames would depend on the episodes before it."""
    import mujoco

    renderer = env.unwrapped.mujoco_renderer
    camera = mujoco.MjvCamera()
    mujoco.mjv_defaultFreeCamera(renderer.model, camera)
    pose = {"lookat": camera.lookat.copy(), "distance": camera.distance, "azimuth": camera.azimuth, "elevation": camera.elevation}
    return pose | dict(renderer.default_cam_config or {})


def _is_mujoco(env_id: str) -> bool:
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

    entry_point = gym.spec(env_id).entry_point
    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    return isinstance(creator, type) and issubclass(creator, MujocoEnv)


def make_env(env_id: str, size: int | None = None, **kwargs) -> gym.Env:
    """`gym.make(env_id, render_mode="rgb_array")`. MuJoCo envs render off-screen at `size` x `size`
    from a pinned camera (the env's own, or the one `CAMERAS` names), so a frame depends only on the
    simulator state."""
    _register_for(env_id)
    if "pusht" in env_id.lower():
        return ForgetLastActionOnReset(gym.make(env_id, render_mode="rgb_array", **kwargs))
    if not _is_mujoco(env_id):
        return gym.make(env_id, render_mode="rgb_array", **kwargs)
    kwargs = {"width": size, "height": size, **kwargs} if size else kwargs
    if "default_camera_config" not in kwargs and _chosen_camera(env_id):
        kwargs["default_camera_config"] = _chosen_camera(env_id)
    if "default_camera_config" not in kwargs:
        probe_env = gym.make(env_id, render_mode="rgb_array", **kwargs)
        kwargs["default_camera_config"] = _pinned_camera(probe_env)
        probe_env.close()
    return gym.make(env_id, render_mode="rgb_array", **kwargs)


ATARI_FRAME_RATE = 60.0  # Hz: the Atari 2600 draws 60 NTSC frames a second; ale-py's render_fps (30) is its viewer's


def frame_rate(env: gym.Env) -> float:
    """Frames per second of the recorded stream: the emulated or rendered rate, divided by any
    frame skip (ALE/Pong-v5, frameskip 4: 15 frames a second)."""
    is_atari = type(env.unwrapped).__module__.startswith("ale_py")
    fps = ATARI_FRAME_RATE if is_atari else float(env.metadata.get("render_fps") or 30)
    frameskip = getattr(env.unwrapped, "_frameskip", 1)
    return fps / frameskip if isinstance(frameskip, int) and frameskip > 1 else fps


def resize_frame(frame: np.ndarray, size: int, square: bool = False) -> np.ndarray:
    """Short side to `size`, aspect kept (even sizes), as ingestion does with `--keep-aspect`; with
    `square`, stretched to `size` x `size` instead (Atari's usual 64 x 64: a crop would cut off the
    score or the paddle)."""
    height, width = frame.shape[:2]
    if square:
        FrameGeometry.fit(width, height, size)  # an odd size is refused as for the stored video
        target = (size, size)
    else:
        geometry = FrameGeometry.fit(width, height, size, keep_aspect=True)
        target = (geometry.width, geometry.height)
    if target == (width, height):
        return frame
    return np.asarray(Image.fromarray(frame).resize(target, Image.BILINEAR))
