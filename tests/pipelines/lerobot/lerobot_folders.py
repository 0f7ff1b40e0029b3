"""LeRobot dataset folders written here for the tests: laid out as lerobot 0.4's
`LeRobotDataset.create(...)` writes them (v3.0: episodes back to back in one mp4 per camera) or as
v2.1 did (one mp4 per episode), with pyarrow and PyAV. Frame t of episode e shows red 40e + 20,
green 10t + 10, and blue 0 on the front camera, 200 on the wrist one; its action is (e, t) and its
state (e, t, 0.5)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from reverie.pipelines.lerobot.importer import LeRobotImportConfig, run_lerobot_import

FPS, HEIGHT, WIDTH = 10, 48, 64
V30_PATHS = (  # info.json's data_path and video_path
    "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
    "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
)
V21_PATHS = (
    "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
    "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
)
INDEX_COLUMNS = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64"}
INDEX_COLUMNS |= {"task_index": "int64"}
LENGTHS = (12, 9, 15)
CAMERAS = {"observation.images.front": 0, "observation.images.wrist": 200}  # video key -> blue level
TASKS = ("pick the cube", "push the cube")


def frame_of(episode: int, t: int, blue: int) -> np.ndarray:
    frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    frame[...] = (40 * episode + 20, 10 * t + 10, blue)
    return frame


def write_mp4(path: Path, frames: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.height, stream.width, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"
        stream.options = {"crf": "10", "g": "4"}  # keyframes every 4 frames: the importer must seek
        for index, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts, video_frame.time_base = index, Fraction(1, FPS)
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))


def float_lists(values: np.ndarray) -> pa.Array:
    """(N, D) -> N fixed-size lists of D float32, as LeRobot stores vector features."""
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), values.shape[1])


def frame_table(episode: int, first_index: int, shift: float = 0.0) -> pa.Table:
    """Episode `episode`'s frame rows; `shift` seconds added to its timestamps."""
    length = LENGTHS[episode]
    t = np.arange(length)
    columns = {
        "observation.state": float_lists(np.stack([np.full(length, episode), t, np.full(length, 0.5)], 1)),
        "action": float_lists(np.stack([np.full(length, episode), t], 1)),
    }
    columns |= {"timestamp": pa.array(t / FPS + shift, pa.float32()), "frame_index": pa.array(t, pa.int64())}
    columns |= {"episode_index": pa.array([episode] * length, pa.int64()), "index": pa.array(first_index + t, pa.int64())}
    return pa.table(columns | {"task_index": pa.array([episode % 2] * length, pa.int64())})


def write_info(root: Path, version: str, paths: tuple[str, str]) -> None:
    video = {"dtype": "video", "shape": [HEIGHT, WIDTH, 3], "names": ["height", "width", "channels"]}
    features = {key: video for key in CAMERAS}
    features |= {"observation.state": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]}}
    features |= {"action": {"dtype": "float32", "shape": [2], "names": ["e", "t"]}}
    features |= {name: {"dtype": dtype, "shape": [1], "names": None} for name, dtype in INDEX_COLUMNS.items()}
    info = {"codebase_version": version, "robot_type": "so100", "total_episodes": len(LENGTHS), "total_frames": sum(LENGTHS)}
    info |= {"chunks_size": 1000, "fps": FPS, "data_path": paths[0], "video_path": paths[1], "features": features}
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))


def write_v30(root: Path, video_file: tuple[int, ...] = (0, 0, 0), shift: dict[int, float] | None = None) -> Path:
    """Episode e's frames go to videos/KEY/chunk-000/file-{video_file[e]:03d}.mp4, back to back."""
    write_info(root, "v3.0", V30_PATHS)
    starts = np.cumsum((0,) + LENGTHS)
    tables = [frame_table(e, starts[e], (shift or {}).get(e, 0.0)) for e in range(len(LENGTHS))]
    (root / "data" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.concat_tables(tables), root / "data" / "chunk-000" / "file-000.parquet")
    rows = []
    for episode, length in enumerate(LENGTHS):
        row = {"episode_index": episode, "tasks": [TASKS[episode % 2]], "length": length}
        row |= {"data/chunk_index": 0, "data/file_index": 0}
        row |= {"dataset_from_index": int(starts[episode]), "dataset_to_index": int(starts[episode + 1])}
        from_frame = sum(LENGTHS[e] for e in range(episode) if video_file[e] == video_file[episode])
        for key in CAMERAS:
            row |= {f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": video_file[episode]}
            row |= {f"videos/{key}/from_timestamp": from_frame / FPS}
            row |= {f"videos/{key}/to_timestamp": (from_frame + length) / FPS}
        rows.append(row)
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table({"task_index": [0, 1], "__index_level_0__": list(TASKS)}), root / "meta" / "tasks.parquet")
    for key, blue in CAMERAS.items():
        for file_index in sorted(set(video_file)):
            frames = [frame_of(e, t, blue) for e, n in enumerate(LENGTHS) if video_file[e] == file_index for t in range(n)]
            write_mp4(root / "videos" / key / "chunk-000" / f"file-{file_index:03d}.mp4", frames)
    return root


def write_v21(root: Path) -> Path:
    write_info(root, "v2.1", V21_PATHS)
    episodes = [{"episode_index": e, "tasks": [TASKS[e % 2]], "length": n} for e, n in enumerate(LENGTHS)]
    tasks = [{"task_index": index, "task": task} for index, task in enumerate(TASKS)]
    (root / "meta" / "episodes.jsonl").write_text("".join(json.dumps(line) + "\n" for line in episodes))
    (root / "meta" / "tasks.jsonl").write_text("".join(json.dumps(line) + "\n" for line in tasks))
    starts = np.cumsum((0,) + LENGTHS)
    (root / "data" / "chunk-000").mkdir(parents=True)
    for episode, length in enumerate(LENGTHS):
        pq.write_table(frame_table(episode, starts[episode]), root / "data" / "chunk-000" / f"episode_{episode:06d}.parquet")
        for key, blue in CAMERAS.items():
            frames = [frame_of(episode, t, blue) for t in range(length)]
            write_mp4(root / "videos" / "chunk-000" / key / f"episode_{episode:06d}.mp4", frames)
    return root


def imported(dataset: Path, out: Path, **overrides) -> list[dict]:
    settings = {"size": 32, "clip_frames": 4, "clip_format": "npy", "progress": False} | overrides
    return run_lerobot_import(LeRobotImportConfig([dataset], out, **settings))


def read_colours(frames: np.ndarray) -> np.ndarray:
    """(L, 3) mean red, green, blue of each frame."""
    return frames.reshape(len(frames), -1, 3).mean(1)
