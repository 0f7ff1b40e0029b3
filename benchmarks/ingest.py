"""How close `reverie ingest` gets to the physical floor: decoding and resizing with the ffmpeg CLI.

On one generated reference set (cached in benchmarks/.data/) and the same number of worker
processes, it measures the wall time of:

  (a) the `ffmpeg` command line decoding every file through the same fps/scale/crop filter chain
      into /dev/null, with `-threads 1` per process and with ffmpeg's default threading; the faster
      of the two is the floor;
  (b) each decode backend of reverie alone, iterating every frame of every file;
  (c) the whole `reverie ingest` command (probe, decode, shot cuts, scores, encode, shards,
      manifest), with `--format mp4` and with `--format npy`;
  (d) video2dataset doing the comparable job (resize + fps subsampling) on the same local files,
      installed into its own venv at benchmarks/.data/venv-v2d; when it cannot install or run,
      the reason is recorded instead.

Each is the best of `--repeats` runs. The table gives wall seconds, realtime factor (seconds of
video per wall second) and the ratio to (a); `ingest_vs_ffmpeg` = c / a has the target <= 1.25.
Everything lands in benchmarks/results/ingest.json.

    .venv/bin/python benchmarks/ingest.py
    .venv/bin/python benchmarks/ingest.py --videos 4 --seconds 10 --repeats 1   # quick look
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import av

from reverie.pipelines.decoders import DECODERS, available_decoders
from reverie.shards.geometry import FrameGeometry
from reverie.pipelines.probe import VideoInfo, probe
from common import DATA, generated_once, machine, write_json
from reverie.pipelines.synthetic import SHOT_SOURCES, make_shots

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "ingest.json"
V2D_VENV = DATA / "venv-v2d"
REVERIE = Path(sys.executable).parent / "reverie"  # the CLI of the venv running this script
TARGET = 1.25  # ingest may cost at most this much more than bare decode + resize
FLOOR_JOBS = ("ffmpeg_threads1", "ffmpeg_default")

# (frame size, fps, encoder, container) of each reference video, cycled: mostly H.264 at 720p and
# 480p like a web crawl, plus the VP9 and MPEG-4 Part 2 files that always turn up in one.
FORMATS = [
    ((1280, 720), 30, "libx264", "mp4"),
    ((854, 480), 24, "libx264", "mp4"),
    ((1280, 720), 25, "libx264", "mkv"),
    ((854, 480), 30, "libvpx-vp9", "webm"),
    ((1280, 720), 24, "libx264", "mp4"),
    ((854, 480), 25, "mpeg4", "avi"),
    ((1280, 720), 30, "libx264", "mp4"),
    ((854, 480), 30, "libx264", "mkv"),
]
SHOTS_PER_VIDEO = 4  # so shot-cut detection has cuts to find


# ---------------------------------------------------------------- reference inputs


def make_reference_set(videos: int, seconds: float, workers: int) -> Path:
    """Generate the inputs once (`common.generated_once`)."""

    def make(partial: Path) -> None:
        with ThreadPoolExecutor(workers) as pool:  # each job is an ffmpeg process
            list(pool.map(lambda index: make_reference_video(partial, index, seconds), range(videos)))

    return generated_once(DATA / f"inputs-{videos}x{seconds:g}s", make, f"{videos} videos of {seconds:g} s")


def make_reference_video(folder: Path, index: int, seconds: float) -> Path:
    size, fps, codec, extension = FORMATS[index % len(FORMATS)]
    sources = [SHOT_SOURCES[(index + shot) % len(SHOT_SOURCES)] for shot in range(SHOTS_PER_VIDEO)]
    shots = [(source, seconds / SHOTS_PER_VIDEO) for source in sources]
    return make_shots(folder / f"ref_{index:02d}.{extension}", shots, size=size, fps=fps, codec=codec)


def describe(info: VideoInfo) -> dict:
    return {
        "file": Path(info.path).name,
        "codec": info.codec,
        "container": info.container,
        "size": f"{info.width}x{info.height}",
        "fps": round(info.fps, 3),
        "seconds": round(info.duration, 3),
    }


# ---------------------------------------------------------------- (a) the ffmpeg command line


def ffmpeg_command(info: VideoInfo, fps: float, size: int, single_thread: bool) -> list[str]:
    geometry = FrameGeometry.fit(info.width, info.height, size)
    # -threads before -i sets the decoder's threads; -filter_threads the filter graph's.
    threads = ["-threads", "1", "-filter_threads", "1"] if single_thread else []
    return [
        "ffmpeg", "-nostdin", "-loglevel", "error", *threads, "-i", info.path,
        "-vf", geometry.ffmpeg_filter(fps), "-f", "rawvideo", "-y", "/dev/null",
    ]  # fmt: skip


def run_ffmpeg(infos: list[VideoInfo], args: argparse.Namespace, single_thread: bool) -> tuple[float, dict]:
    commands = [ffmpeg_command(info, args.fps, args.size, single_thread) for info in infos]
    # Threads suffice to keep `workers` ffmpeg processes busy: the work is in the children.
    with ThreadPoolExecutor(args.workers) as pool:
        start = time.perf_counter()
        list(pool.map(lambda command: subprocess.run(command, check=True), commands))
        return time.perf_counter() - start, {"command": " ".join(commands[0])}


# ---------------------------------------------------------------- (b) one decode backend alone


def decode_file(decoder: str, info: VideoInfo, fps: float, size: int) -> int:
    geometry = FrameGeometry.fit(info.width, info.height, size)
    return sum(1 for _ in DECODERS.get(decoder)().frames(info, fps, geometry))


def run_decoder(infos: list[VideoInfo], args: argparse.Namespace, decoder: str) -> tuple[float, dict]:
    start = time.perf_counter()  # a fresh pool each run: its start-up is part of the cost, as in ingest
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(decode_file, decoder, info, args.fps, args.size) for info in infos]
        frames = [future.result() for future in futures]
    return time.perf_counter() - start, {"frames": sum(frames), "frames_per_file": frames}


# ---------------------------------------------------------------- (c) the whole `reverie ingest`


def run_reverie_ingest(folder: Path, args: argparse.Namespace, clip_format: str) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory(prefix="reverie-bench-") as out:
        command = [
            str(REVERIE), "ingest", str(folder), "--out", out, "--workers", str(args.workers),
            "--fps", str(args.fps), "--size", str(args.size), "--clip-frames", str(args.clip_frames),
            "--format", clip_format, "--no-progress",
        ]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(f"reverie ingest exited {done.returncode}: {tail(done.stderr)}")
        lines = [json.loads(line) for line in (Path(out) / "manifest.jsonl").read_text().splitlines()]
    return wall, {
        "clips": sum(line["clips"] for line in lines),
        "dropped_clips": {why: sum(line.get("dropped", {}).get(why, 0) for line in lines) for why in ("static", "duplicate")},
        "inputs": {status: sum(line["status"] == status for line in lines) for status in ("ok", "skipped", "failed")},
        "command": " ".join(command),
    }


# ---------------------------------------------------------------- (d) video2dataset

# Runs inside the video2dataset venv. Local paths are valid urls there: its reader copies the bytes
# of any existing file whose name ends in a video extension. Two bugs of the PyPI release 1.3.0 fail
# every video with this config; both are fixed upstream (iejMac/video2dataset#322) but unreleased,
# so the runner patches them without changing any work done:
#  - the worker reads `encode_formats` from the first video subsampler, which only sets
#    `encode_format` (#263, #311);
#  - FrameSubsampler pops and re-adds "video" in the streams dict the worker is iterating over
#    ("dictionary keys changed during iteration", #327); it is given a copy, then values are put back.
# It runs as a script file: video2dataset's spawned workers re-import the main script, patches too.
V2D_WORKAROUND = "patched 1.3.0 bugs fixed upstream: encode_formats attribute (#311), stream dict mutation (#327)"
V2D_RUNNER = """
import json, sys
from video2dataset import video2dataset
from video2dataset.subsamplers import FrameSubsampler, ResolutionSubsampler

def with_encode_formats(init):
    def patched(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.encode_formats = {"video": self.encode_format}
    return patched

def in_place(call):
    def patched(self, streams, metadata=None):
        result, metadata, error = call(self, dict(streams), metadata)
        streams.update(result)
        return streams, metadata, error
    return patched

for subsampler in (ResolutionSubsampler, FrameSubsampler):
    subsampler.__init__ = with_encode_formats(subsampler.__init__)
FrameSubsampler.__call__ = in_place(FrameSubsampler.__call__)

if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    video2dataset(url_list=job["url_list"], output_folder=job["out"], output_format="webdataset",
                  input_format="txt", encode_formats={"video": "mp4"}, tmp_dir=job["tmp"], config=job["config"])
"""


def video2dataset_python() -> tuple[Path | None, str]:
    """The venv's python once `import video2dataset` works there, else None and why not."""
    python = V2D_VENV / "bin" / "python"
    if imports_video2dataset(python):
        return python, ""
    print(f"installing video2dataset into {V2D_VENV} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", V2D_VENV], check=True)
    # video2dataset 1.3.0 pins numpy<2 but not pyarrow or pandas, whose current releases need NumPy 2.
    packages = ["video2dataset", "pyarrow<21", "pandas<3"]
    install = subprocess.run([python, "-m", "pip", "install", "-q", *packages], capture_output=True, text=True)
    if install.returncode:
        return None, f"pip install video2dataset failed: {tail(install.stderr)}"
    if not imports_video2dataset(python):
        return None, "video2dataset installed but `import video2dataset` fails"
    return python, ""


def imports_video2dataset(python: Path) -> bool:
    return python.exists() and subprocess.run([python, "-c", "import video2dataset"], capture_output=True).returncode == 0


def video2dataset_config(args: argparse.Namespace) -> dict:
    return {
        # Short side to --size then a centre crop, then resampling to --fps: the same frames as ingest.
        "subsampling": {
            "ResolutionSubsampler": {"args": {"video_size": args.size, "resize_mode": "scale,crop"}},
            "FrameSubsampler": {"args": {"frame_rate": args.fps}},
        },
        "reading": {
            "yt_args": {"download_size": 360, "download_audio_rate": 44100, "yt_metadata_args": {}},
            "timeout": 60,
            "sampler": None,
        },
        # One video per shard: video2dataset gives each process whole shards, so bigger shards would
        # leave all but one of the --workers processes idle on a small set.
        "storage": {"number_sample_per_shard": 1, "oom_shard_count": 5, "captions_are_subtitles": False},
        # thread_count is the reader threads per process; its "download" here is a local file read.
        "distribution": {
            "processes_count": args.workers,
            "thread_count": 1,
            "subjob_size": 1000,
            "distributor": "multiprocessing",
        },
    }


def run_video2dataset(python: Path, infos: list[VideoInfo], args: argparse.Namespace) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory(prefix="v2d-bench-") as work:
        url_list, runner = Path(work) / "urls.txt", Path(work) / "v2d_runner.py"
        url_list.write_text("".join(f"{info.path}\n" for info in infos))
        runner.write_text(V2D_RUNNER)
        job = {"url_list": str(url_list), "out": f"{work}/out", "tmp": work, "config": video2dataset_config(args)}
        start = time.perf_counter()
        done = subprocess.run([python, runner, json.dumps(job)], capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(f"video2dataset exited {done.returncode}: {tail(done.stderr)}")
        stats = [json.loads(path.read_text()) for path in Path(work, "out").glob("*_stats.json")]
    successes = sum(stat["successes"] for stat in stats)
    if successes < len(infos):
        errors = sorted({error for stat in stats for error in stat["status_dict"] if error != "success"})
        raise RuntimeError(f"video2dataset processed {successes} of {len(infos)} videos: {errors}")
    v2d_version = importlib_version(python, "video2dataset")
    return wall, {"videos": successes, "version": v2d_version, "workaround": V2D_WORKAROUND}


# ---------------------------------------------------------------- measuring and reporting


def tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def importlib_version(python: Path, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None




def versions() -> dict:
    ffmpeg_cli = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    return {
        "ffmpeg_cli": ffmpeg_cli,
        "av": av.__version__,
        "av_ffmpeg": av.ffmpeg_version_info,  # PyAV bundles its own FFmpeg, often not the CLI's
        "decord": version("decord"),
        "torchcodec": version("torchcodec"),
        "torch": version("torch"),
        "reverie": version("reverie"),
    }


def children_cpu_s() -> float:
    """CPU seconds of all reaped child processes (ffmpeg, pool workers, the reverie CLI and its pool)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(jobs: dict, repeats: int) -> dict:
    """Best wall time of each job, and the CPU seconds its processes used in that run.

    Repeats go round-robin over the jobs, so a burst of load from another process on the machine
    perturbs one run of each rather than every run of one job. CPU seconds move much less than wall
    time under such load, so they tell whether a slow wall time is noise.
    """
    results = {name: {"runs": [], "cpu_runs": []} for name in jobs}
    for repeat in range(repeats):
        for name, job in jobs.items():
            if "error" in results[name]:
                continue
            cpu_before = children_cpu_s()
            try:
                wall, detail = job()
            except Exception as error:  # one broken contender must not sink the benchmark
                results[name]["error"] = f"{type(error).__name__}: {error}"
                print(f"  {name}: FAILED {results[name]['error']}", flush=True)
                continue
            cpu = children_cpu_s() - cpu_before
            results[name]["runs"].append(round(wall, 3))
            results[name]["cpu_runs"].append(round(cpu, 3))
            results[name]["detail"] = detail
            print(f"  [{repeat + 1}/{repeats}] {name:<22} {wall:8.2f} s wall {cpu:8.2f} s cpu", flush=True)
    for result in results.values():
        if result["runs"]:
            best = result["runs"].index(min(result["runs"]))
            result["wall_s"], result["cpu_s"] = result["runs"][best], result["cpu_runs"][best]
    return results


def add_ratios(results: dict, video_seconds: float) -> dict:
    """Realtime factors, ratios to the ffmpeg floor (a), and the headline ratios."""
    floor_name = min(FLOOR_JOBS, key=lambda name: results[name].get("wall_s", float("inf")))
    floor = results[floor_name].get("wall_s")
    for result in results.values():
        if "wall_s" in result:
            result["realtime"] = round(video_seconds / result["wall_s"], 2)
            result["vs_ffmpeg"] = round(result["wall_s"] / floor, 3) if floor else None

    def ratio(top: str, bottom: str, key: str = "wall_s") -> float | None:
        over, under = results.get(top, {}).get(key), results.get(bottom, {}).get(key)
        return round(over / under, 3) if over and under else None

    decoders = {name.removeprefix("decode_"): r.get("wall_s") for name, r in results.items() if name.startswith("decode_")}
    decoders = {name: wall for name, wall in decoders.items() if wall}
    ingest_vs_ffmpeg = ratio("ingest_mp4", floor_name)
    return {
        "ffmpeg_floor": floor_name,
        "ffmpeg_floor_s": floor,
        "ingest_vs_ffmpeg": ingest_vs_ffmpeg,
        "ingest_vs_ffmpeg_cpu": ratio("ingest_mp4", floor_name, key="cpu_s"),
        "ingest_npy_vs_ffmpeg": ratio("ingest_npy", floor_name),
        "ingest_vs_video2dataset": ratio("ingest_mp4", "video2dataset"),
        "fastest_decoder": min(decoders, key=decoders.get) if decoders else None,
        "target": TARGET,
        "target_met": ingest_vs_ffmpeg is not None and ingest_vs_ffmpeg <= TARGET,
    }


def print_table(results: dict, summary: dict) -> None:
    print(f"\n{'contender':<24}{'wall s':>9}{'realtime':>10}{'vs ffmpeg':>11}{'cpu s':>9}")
    for name, r in results.items():
        if "wall_s" in r:
            print(f"{name:<24}{r['wall_s']:>9.2f}{r['realtime']:>9.1f}x{r['vs_ffmpeg']:>10.2f}x{r['cpu_s']:>9.1f}")
        else:
            print(f"{name:<24}  not measured: {r.get('error', 'no run')}")
    met = "met" if summary["target_met"] else "NOT met"
    print(f"\ningest_vs_ffmpeg        = {summary['ingest_vs_ffmpeg']} (c / a, target <= {TARGET}: {met})")
    print(f"ingest_vs_ffmpeg_cpu    = {summary['ingest_vs_ffmpeg_cpu']} (CPU seconds: less sensitive to other load)")
    print(f"ingest_npy_vs_ffmpeg    = {summary['ingest_npy_vs_ffmpeg']}")
    print(f"ingest_vs_video2dataset = {summary['ingest_vs_video2dataset']}")
    print(f"floor: {summary['ffmpeg_floor']}; fastest decoder: {summary['fastest_decoder']}")




def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=8, help="reference videos (default 8)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each, seconds (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="processes for every contender (default 2)")
    parser.add_argument("--fps", type=float, default=8.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--clip-frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each; the best counts (default 2)")
    parser.add_argument("--out", type=Path, default=RESULT)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    folder = make_reference_set(args.videos, args.seconds, args.workers)
    infos = [probe(path) for path in sorted(folder.iterdir())]
    video_seconds = sum(info.duration for info in infos)
    print(f"{len(infos)} videos, {video_seconds:.1f} s of video, {args.workers} workers, {os.cpu_count()} cores")

    jobs = {
        FLOOR_JOBS[0]: lambda: run_ffmpeg(infos, args, single_thread=True),
        FLOOR_JOBS[1]: lambda: run_ffmpeg(infos, args, single_thread=False),
    }
    for decoder in available_decoders():
        jobs[f"decode_{decoder}"] = lambda decoder=decoder: run_decoder(infos, args, decoder)
    jobs["ingest_mp4"] = lambda: run_reverie_ingest(folder, args, "mp4")
    jobs["ingest_npy"] = lambda: run_reverie_ingest(folder, args, "npy")
    v2d_python, v2d_unavailable = video2dataset_python()
    if v2d_python:
        jobs["video2dataset"] = lambda: run_video2dataset(v2d_python, infos, args)

    load_before = os.getloadavg()
    results = measure(jobs, args.repeats)
    if not v2d_python:
        results["video2dataset"] = {"runs": [], "error": v2d_unavailable}
    summary = add_ratios(results, video_seconds)
    print_table(results, summary)

    write_json(
        args.out,
        {
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv),
            "machine": machine() | {"loadavg_before": load_before, "loadavg_after": os.getloadavg()},
            "versions": versions(),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "inputs": {
                "videos": len(infos),
                "video_seconds": round(video_seconds, 3),
                "files": [describe(info) for info in infos],
            },
            "summary": summary,
            "results": results,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
