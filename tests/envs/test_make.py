"""`make_env`: MuJoCo frames at the requested size from a pinned camera (the same state gives the
same frame whatever was rendered before), the cameras chosen per env, gym-pusht's first frame
without the last episode's action; `frame_rate` and `resize_frame`."""

from __future__ import annotations



from types import SimpleNamespace

import numpy as np
import pytest

from reverie.envs.make import CAMERAS, ForgetLastActionOnReset, frame_rate, make_env, resize_frame

PUSHT = "gym_pusht/PushT-v0"


def test_mujoco_frames_come_at_the_requested_size():
    env = make_env("Reacher-v5", size=40)
    env.reset(seed=0)
    assert env.render().shape == (40, 40, 3)
    env.close()
    env = make_env("Reacher-v5")
    env.reset(seed=0)
    assert env.render().shape == (480, 480, 3)  # the env's own size
    env.close()


def test_envs_that_draw_their_own_frames_keep_their_size():
    env = make_env("CartPole-v1", size=40)  # size applies to MuJoCo's renderer only; recording resizes
    env.reset(seed=0)
    assert env.render().shape == (400, 600, 3)
    env.close()


def frame_after_other_episodes(env_id: str, earlier_seed: int) -> np.ndarray:
    """The first frame of episode seed 0 in a new env that has rendered an episode of `earlier_seed`."""
    env = make_env(env_id, size=32)
    env.reset(seed=earlier_seed)
    env.action_space.seed(earlier_seed)
    for _ in range(15):
        env.step(env.action_space.sample())
        env.render()
    env.reset(seed=0)
    frame = env.render()
    env.close()
    return frame


@pytest.mark.parametrize("env_id", ["Reacher-v5", "InvertedPendulum-v5"], ids=["chosen camera", "env's own camera"])
def test_the_same_state_gives_the_same_frame_whatever_was_rendered_before(env_id):
    # With gym.make's own free camera these two frames differ by up to 60-90 of 255.
    first, second = (frame_after_other_episodes(env_id, seed) for seed in (1, 2))
    assert first.min() < first.max()  # a picture, not a blank frame
    np.testing.assert_array_equal(first, second)


def test_reacher_is_seen_from_straight_above_unless_a_camera_is_given():
    env = make_env("Reacher-v5", size=32)
    camera = env.unwrapped.mujoco_renderer.default_cam_config
    assert camera["elevation"] == -90.0 and camera["distance"] == CAMERAS["Reacher"]["distance"]
    env.close()
    mine = {"distance": 1.5, "azimuth": 0.0, "elevation": -30.0, "lookat": np.zeros(3)}
    env = make_env("Reacher-v5", size=32, default_camera_config=mine)
    assert env.unwrapped.mujoco_renderer.default_cam_config is mine
    env.close()


def test_the_first_pusht_frame_does_not_show_the_last_episodes_action():
    env = make_env(PUSHT)
    assert isinstance(env, ForgetLastActionOnReset)
    env.reset(seed=3)
    fresh = env.render()
    env.step(np.array([100.0, 400.0]))
    env.reset(seed=3)
    np.testing.assert_array_equal(env.render(), fresh)
    inner = env.env  # gym-pusht itself, without the wrapper
    inner.step(np.array([100.0, 400.0]))
    inner.reset(seed=3)
    assert not np.array_equal(inner.render(), fresh)  # it draws the previous episode's last action
    env.close()


def test_frame_rate_is_the_render_rate_over_the_frame_skip():
    env = make_env("CartPole-v1")
    assert frame_rate(env) == 50.0
    env.close()
    env = make_env("reverie/CartpoleSwingup-v0")
    assert frame_rate(env) == 25.0  # 0.04 s per step
    env.close()

    def fake(fps, frameskip=None) -> SimpleNamespace:
        unwrapped = SimpleNamespace() if frameskip is None else SimpleNamespace(_frameskip=frameskip)
        return SimpleNamespace(metadata={} if fps is None else {"render_fps": fps}, unwrapped=unwrapped)

    assert frame_rate(fake(60, 4)) == 15.0
    assert frame_rate(fake(60, 1)) == 60.0
    assert frame_rate(fake(60, (2, 5))) == 60.0  # a random skip per step: no one rate to divide by
    assert frame_rate(fake(None)) == 30.0


@pytest.mark.parametrize(
    "shape, size, resized",
    [((480, 640, 3), 96, (96, 128, 3)), ((640, 480, 3), 96, (128, 96, 3)), ((100, 333, 3), 50, (50, 166, 3)), ((64, 64, 3), 32, (32, 32, 3))],
)
def test_resize_frame_puts_the_short_side_at_size_and_keeps_the_aspect(shape, size, resized):
    frame = np.full(shape, 77, np.uint8)
    out = resize_frame(frame, size)
    assert out.shape == resized and out.dtype == np.uint8 and (out == 77).all()


def test_resize_frame_leaves_a_frame_of_the_right_size_alone_and_refuses_odd_sizes():
    frame = np.random.default_rng(0).integers(0, 256, size=(32, 48, 3), dtype=np.uint8)
    assert resize_frame(frame, 32) is frame
    smaller = resize_frame(frame, 16)
    assert abs(float(smaller.mean()) - float(frame.mean())) < 3  # bilinear: the picture, smaller
    with pytest.raises(ValueError, match="must be even"):
        resize_frame(frame, 31)


def test_resize_frame_square_stretches_the_whole_frame_to_size_by_size():
    frame = np.zeros((210, 160, 3), np.uint8)  # an Atari screen
    frame[:10] = 255  # the score band at the top, which a square crop would cut off
    out = resize_frame(frame, 64, square=True)
    assert out.shape == (64, 64, 3) and out[0].min() == 255 and out[-1].max() == 0
    with pytest.raises(ValueError, match="must be even"):
        resize_frame(frame, 63, square=True)


def test_an_atari_stream_runs_at_the_emulator_rate_over_its_frame_skip():
    env = make_env("ALE/Pong-v5")  # frameskip 4 at 60 Hz
    try:
        assert frame_rate(env) == 15.0
    finally:
        env.close()
