"""Keys to actions: which action index the keys held down stand for, and which keys mean nothing.

Two key maps, both of combinations of key codes (pygame's, which are the characters' own codes for
letters, digits and space) to action indices:

- the digit keys: key 1 is action 0, key 2 action 1, .. key 9 action 8 and key 0 action 9, for the
  first ten actions of any model. Genie's latent actions 1..|A| ([18], |A| = 8) are keys 1..8.
- an env's own keys (`--env ENV_ID`): `gymnasium.make(ENV_ID).unwrapped.get_keys_to_action()`
  where the env has it (ale-py's: w a s d and space, held together for the combined actions),
  once the env's action space is checked to be the model's. An env without it gets the digits.

With no known key held, or a combination the map does not have, the action is the idle one:
`--idle-action`, or else the env's action for no keys where it names one, or else 0. A key that
no combination uses is ignored, and `UnknownKeys` says so once per key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym

from reverie.envs.make import make_env
from reverie.play.playable import Playable, PlayError

DIGIT_KEYS = tuple(ord(digit) for digit in "1234567890")  # key of action 0, 1, .., 9


@dataclass
class KeyMap:
    combos: dict[tuple[int, ...], int]  # sorted key codes held together -> action index
    idle: int  # the action when no combination is held
    source: str  # "digit keys" or the env id

    @property
    def known(self) -> set[int]:
        return {key for combo in self.combos for key in combo}

    def action(self, held: set[int]) -> int:
        """The action index of the keys held down (unknown ones left out)."""
        return self.combos.get(tuple(sorted(held & self.known)), self.idle)

    def describe(self) -> str:
        """One line: each combination's keys and action, and the idle action."""
        pairs = ", ".join(f"{'+'.join(key_label(key) for key in combo)} -> {action}" for combo, action in self.combos.items())
        return f"keys ({self.source}): {pairs}; no key: {self.idle}"


def key_label(key: int) -> str:
    return "space" if key == ord(" ") else chr(key) if 32 < key < 127 else str(key)


@dataclass
class UnknownKeys:
    """The keys pressed that the map does not know, each reported once."""

    seen: set[int] = field(default_factory=set)

    def first_time(self, key: int) -> bool:
        """True the first time `key` is seen, False after."""
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def digit_key_map(playable: Playable, idle: int, source: str) -> KeyMap:
    count = min(playable.action_count, len(DIGIT_KEYS))
    return KeyMap({(DIGIT_KEYS[action],): action for action in range(count)}, idle, source)


def key_map(playable: Playable, env_id: str | None, idle_action: int | None) -> KeyMap:
    """The env's keys (checked against the model's actions) with --env, else the digit keys; the idle
    action checked to be one of the model's."""
    combos = None if env_id is None else env_keys(env_id, playable)
    if combos is None:
        idle = playable.check_action(0 if idle_action is None else idle_action, "--idle-action")
        return digit_key_map(playable, idle, "digit keys" if env_id is None else f"digit keys; {env_id} has no key map")
    no_keys = combos.pop((), 0)  # the env's own idle action, when it names one
    idle = no_keys if idle_action is None else idle_action
    return KeyMap(combos, playable.check_action(idle, "--idle-action"), env_id)


def env_keys(env_id: str, playable: Playable) -> dict[tuple[int, ...], int] | None:
    """The env's key combinations -> action indices (None without a key map), or PlayError when its
    action space is not the model's."""
    try:
        env = make_env(env_id)
    except (gym.error.Error, ImportError) as error:
        raise PlayError(f"--env {env_id}: cannot be made ({' '.join(str(error).split())})") from None
    try:
        space = env.action_space
        check_space(env_id, space, playable)
        try:
            keys_to_action = env.unwrapped.get_keys_to_action() if isinstance(space, gym.spaces.Discrete) else None
        except AttributeError:  # no method, or ale-py's continuous envs, which have none
            keys_to_action = None
    finally:
        env.close()
    if not keys_to_action:
        return None
    start = int(space.start)
    return {tuple(sorted(ord(key) if isinstance(key, str) else int(key) for key in combo)): int(action) - start for combo, action in keys_to_action.items()}


def check_space(env_id: str, space: gym.Space, playable: Playable) -> None:
    if isinstance(space, gym.spaces.Discrete):
        nvec = (int(space.n),)
    elif isinstance(space, gym.spaces.MultiDiscrete):
        nvec = tuple(int(n) for n in space.nvec.ravel())
    else:
        raise PlayError(f"--env {env_id}: its action space {space} is not discrete; play takes discrete or multi-discrete actions")
    if nvec != playable.nvec:
        held = f"{space.n} actions" if isinstance(space, gym.spaces.Discrete) else f"multi-discrete actions of nvec {list(nvec)}"
        raise PlayError(f"--env {env_id} has {held}, but {playable.name} takes {playable.describe_actions()}; give the env it was trained on")
