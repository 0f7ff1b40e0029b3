"""Key maps: digit keys for Genie's latent actions, an ale-py env's own keys (combinations
included) checked against the model's action count, the idle action, unknown keys once."""

from __future__ import annotations

import pytest

from reverie.play import Playable, PlayError
from reverie.play.keys import UnknownKeys, key_map


def playable(*nvec: int, name: str = "maskgit_dynamics") -> Playable:
    return Playable(model=None, name=name, frame_size=(16, 16), kind="discrete" if len(nvec) == 1 else "multi_discrete", nvec=nvec)


def test_latent_actions_are_the_digit_keys_from_one():
    keys = key_map(playable(8), None, None)
    assert [keys.action({ord(str(digit))}) for digit in range(1, 9)] == list(range(8))
    assert keys.action(set()) == 0 and keys.action({ord("9")}) == 0  # no ninth latent action: idle
    assert ord("9") not in keys.known
    assert key_map(playable(8), None, 5).action(set()) == 5


def test_an_atari_env_gives_its_own_keys_and_combinations():
    pytest.importorskip("ale_py")
    keys = key_map(playable(6, name="pixel_diffusion_world_model"), "ALE/Pong-v5", None)  # NOOP FIRE RIGHT LEFT RIGHTFIRE LEFTFIRE
    a, d, space = (ord(key) for key in "ad ")
    assert keys.action({space}) == 1 and keys.action({d}) == 2 and keys.action({a}) == 3
    assert keys.action({d, space}) == 4 and keys.action({a, space}) == 5  # held together
    assert keys.action({ord("e")}) == 0 and keys.action(set()) == 0 and keys.idle == 0  # NOOP
    assert keys.action({ord("w")}) == 0 and ord("w") not in keys.known  # no UP in Pong's minimal set
    with pytest.raises(PlayError, match=r"--env ALE/Breakout-v5 has 4 actions, but pixel_diffusion_world_model takes 6 actions"):
        key_map(playable(6, name="pixel_diffusion_world_model"), "ALE/Breakout-v5", None)


def test_an_env_without_a_key_map_gives_the_digits_after_its_count_is_checked():
    keys = key_map(playable(2, name="token_world_model"), "CartPole-v1", None)
    assert keys.source == "digit keys; CartPole-v1 has no key map" and keys.action({ord("2")}) == 1
    with pytest.raises(PlayError, match="--env NoSuchEnv-v0: cannot be made"):
        key_map(playable(2), "NoSuchEnv-v0", None)


def test_multi_discrete_joint_indices_unravel_to_components():
    space = playable(2, 3)
    assert space.action_count == 6
    assert space.action_tensor(5, "cpu").tolist() == [[1, 2]] and space.action_tensor(1, "cpu").tolist() == [[0, 1]]
    with pytest.raises(PlayError, match="action 6 is out of range.*multi-discrete nvec \\[2, 3\\]"):
        space.check_action(6, "--actions entry 1")


def test_an_unknown_key_is_reported_the_first_time_only():
    unknown = UnknownKeys()
    assert [unknown.first_time(key) for key in (113, 113, 120, 113)] == [True, False, True, False]
