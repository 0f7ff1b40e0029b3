import numpy as np

from reverie.pipelines.decoders import DECODERS
from reverie.shards.geometry import FrameGeometry
from reverie.pipelines.probe import probe
from reverie.pipelines.scenes import CutDetector, hsv
from reverie.pipelines.synthetic import SHOT_SOURCES, make_shots


def cut_times(path, fps=8.0):
    info = probe(path)
    detector = CutDetector()
    geometry = FrameGeometry.fit(info.width, info.height, 64)
    return [time for time, frame in DECODERS.get("pyav")().frames(info, fps, geometry) if detector.update(frame)[1]]


def test_hsv_matches_known_colours():
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]]], dtype=np.uint8)
    hue, saturation, value = np.moveaxis(hsv(pixels)[0], -1, 0)
    np.testing.assert_allclose(hue[:3], [0.0, 255 / 3, 2 * 255 / 3], atol=1e-3)
    np.testing.assert_allclose(saturation, [255, 255, 255, 0], atol=1e-3)
    np.testing.assert_allclose(value, [255, 255, 255, 128], atol=1e-3)


def test_cuts_found_at_known_times(tmp_path, needs_ffmpeg):
    shots = [(SHOT_SOURCES[0], 2.0), (SHOT_SOURCES[1], 3.0), (SHOT_SOURCES[3], 2.5), (SHOT_SOURCES[0], 2.0)]
    video = make_shots(tmp_path / "shots.mp4", shots, size=(256, 144), fps=25)
    assert cut_times(video) == [2.0, 5.0, 7.5]


def test_moving_single_shot_has_no_cut(tmp_path, needs_ffmpeg):
    for source in SHOT_SOURCES:
        name = source.split("=")[0]
        assert cut_times(make_shots(tmp_path / f"{name}.mp4", [(source, 4.0)], size=(192, 108))) == [], source


def test_static_frames_never_cut():
    detector = CutDetector()
    frame = np.full((64, 64, 3), 90, dtype=np.uint8)
    assert not any(detector.update(frame)[1] for _ in range(20))


def test_cut_needs_minimum_scene_length():
    detector = CutDetector(min_scene_frames=4)
    black, white = np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)
    flashes = [detector.update(frame)[1] for frame in [black] * 5 + [white, black, white, black] + [black] * 5]
    assert flashes.count(True) == 1
