"""The geometry of MuJoCo's two-link Reacher arm (`reacher.xml`), shared by Reacher-v5 and
`reverie/ReacherJoints-v0`: forward kinematics from the joint angles to the fingertip, and the
two-link inverse kinematics that the scripted recording policy and the goal task use to put the
fingertip at a point."""

from __future__ import annotations

import numpy as np

REACHER_LINKS = (0.1, 0.11)  # m: shoulder to elbow, elbow to fingertip (reacher.xml)
REACHER_ELBOW_RANGE = 3.0  # rad: joint1's limit


def reacher_fingertip_at(arm_angles: np.ndarray) -> np.ndarray:
    """(..., 2) fingertip xy in metres for shoulder and elbow angles (..., 2) (forward kinematics)."""
    upper, fore = REACHER_LINKS
    shoulder, hand = arm_angles[..., 0], arm_angles[..., 0] + arm_angles[..., 1]
    return np.stack([upper * np.cos(shoulder) + fore * np.cos(hand), upper * np.sin(shoulder) + fore * np.sin(hand)], axis=-1)


def reacher_fingertip(env) -> np.ndarray:
    """(2,) the fingertip's xy in metres now. Computed from the joint angles: after `env.step`,
    MuJoCo's body positions (`data.xpos`) still hold the kinematics before the last substep."""
    return reacher_fingertip_at(env.unwrapped.data.qpos[:2].copy())


def reacher_arm_angles(target: np.ndarray, elbow_sign: float) -> np.ndarray:
    """(2,) shoulder and elbow angles that put the fingertip at `target` (2,) (two-link inverse
    kinematics; `elbow_sign` +-1 picks the branch). Targets too close to the shoulder for the
    elbow's range get the nearest reachable pose."""
    upper, fore = REACHER_LINKS
    reach = float(np.linalg.norm(target))
    cos_elbow = (reach**2 - upper**2 - fore**2) / (2 * upper * fore)
    elbow = elbow_sign * min(np.arccos(np.clip(cos_elbow, -1.0, 1.0)), REACHER_ELBOW_RANGE)
    shoulder = np.arctan2(target[1], target[0]) - np.arctan2(fore * np.sin(elbow), upper + fore * np.cos(elbow))
    return np.array([shoulder, elbow])
