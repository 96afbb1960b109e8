#!/usr/bin/env python3
"""Writes tiny LeRobot datasets with video cameras, using the official `lerobot` package, for the
r1-data video reader tests (`tests/lerobot_video.rs`).

Every dataset holds the same demonstrations (same states, same camera frames), stored four ways,
under `tests/fixtures/lerobot_video/` (deleted and rewritten on every run):

  av1/      v3.0, `use_videos=True`, lerobot's default codec (libsvtav1, AV1), cameras `front`
            (64x48) and `wrist` (32x24). Four episodes; the size limits are changed while
            recording so that data and video files split at different episodes:
            data file-000 holds episodes 0-1, file-001 episodes 2-3; video file-000 holds
            episodes 0-2 (so episodes 1 and 2 start mid-file), chunk-001/file-000 episode 3
            (chunks_size 1 after episode 2).
  h264/     v3.0, `vcodec="h264"`, camera `front` only, all four episodes in one video file.
  v21/      v2.1 (lerobot 0.3.x, one AV1 video per episode and camera), camera `front`.
  images/   v3.0, the same cameras as `dtype: image` (PNG in the parquet): the reference the
            tests compare decoded frames and keypoints against.
  expected.json  per dataset and episode: the video file (relative to the dataset root) and
            the first frame's timestamp in it, per camera, as lerobot's metadata records them.

The frames are chosen so that a frame from the wrong time cannot pass for the right one: the
background brightness steps by 12 per frame and a grey square moves 6 pixels per frame.

Requires lerobot 0.4.x (writes v3.0) in the running Python; the v2.1 dataset needs lerobot 0.3.x,
which is installed apart, e.g. `pip install --no-deps --target /tmp/lerobot-v21 lerobot==0.3.3
jsonlines attrs`, and passed with `--lerobot-v21 /tmp/lerobot-v21` (without it, v21/ is kept as
it is). Run: python3 make_lerobot_video_fixtures.py [--lerobot-v21 DIR]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "lerobot_video"
FPS = 10
CAMERAS = {"observation.images.front": (48, 64), "observation.images.wrist": (24, 32)}
NAMES = ["x", "y", "z", "qx", "qy", "qz", "qw", "gripper"]
# (length, task index) per episode.
EPISODES = [(12, 0), (9, 1), (11, 0), (10, 1)]
TASKS = ["pick up the red cube", "stack the blocks"]


def frame_image(episode, frame, shape):
    """A smooth background whose brightness encodes the frame, and a moving grey square."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 40 + 12 * frame + (x * 40) // w
    img[..., 1] = 60 + 30 * episode + (y * 40) // h
    img[..., 2] = 90
    side = h // 3
    left = (6 * frame * w // 64) % (w - side)
    top = h // 3
    img[top:top + side, left:left + side] = 230
    return img


def state(episode, frame, length):
    """Moves along x, dwells for three frames in the middle, closes the gripper after the dwell."""
    half = length // 2
    t = min(frame, half - 1) + max(0, frame - half - 2)
    open_ = 1.0 if frame <= half else 0.0
    return np.array([0.3 + 0.02 * t + 0.1 * episode, -0.1 + 0.01 * t, 0.8 - 0.005 * t,
                     0.0, 0.0, 0.0, 1.0, open_], np.float32)


def features(dtype, cameras):
    out = {
        "observation.state": {"dtype": "float32", "shape": (len(NAMES),), "names": NAMES},
        "action": {"dtype": "float32", "shape": (len(NAMES),), "names": NAMES},
    }
    for key in cameras:
        h, w = CAMERAS[key]
        out[key] = {"dtype": dtype, "shape": (h, w, 3), "names": ["height", "width", "channels"]}
    return out


def record(ds, cameras, on_episode=None, task_in_frame=True):
    for e, (length, task) in enumerate(EPISODES):
        if on_episode:
            on_episode(ds, e)
        for f in range(length):
            frame = {"observation.state": state(e, f, length), "action": state(e, min(f + 1, length - 1), length)}
            for key in cameras:
                frame[key] = frame_image(e, f, CAMERAS[key])
            if task_in_frame:
                frame["task"] = TASKS[task]
                ds.add_frame(frame)
            else:
                ds.add_frame(frame, task=TASKS[task])
        ds.save_episode()


def split_files(ds, episode):
    """Size limits that make the file splits the module docs describe (sizes in MB; a limit
    below one file's size starts a new file at the next episode)."""
    tiny, big = 1e-9, 1000
    if episode == 2:
        ds.meta.update_chunk_settings(data_files_size_in_mb=tiny, video_files_size_in_mb=big)
    elif episode == 3:
        ds.meta.update_chunk_settings(chunks_size=1, data_files_size_in_mb=big, video_files_size_in_mb=tiny)
    else:
        ds.meta.update_chunk_settings(data_files_size_in_mb=big, video_files_size_in_mb=big)


def v30(name, dtype, cameras, vcodec="libsvtav1", splits=False):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = OUT / name
    ds = LeRobotDataset.create(f"r1/{name}", fps=FPS, features=features(dtype, cameras), root=root,
                               robot_type="panda", use_videos=dtype == "video", vcodec=vcodec)
    record(ds, cameras, split_files if splits else None)
    ds.finalize()


def v21():
    """Runs in a separate interpreter whose path puts lerobot 0.3.x first."""
    from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION, LeRobotDataset

    assert CODEBASE_VERSION == "v2.1", f"--lerobot-v21 must hold lerobot 0.3.x, found {CODEBASE_VERSION}"
    cameras = ["observation.images.front"]
    ds = LeRobotDataset.create("r1/v21", fps=FPS, features=features("video", cameras), root=OUT / "v21",
                               robot_type="panda", use_videos=True)
    record(ds, cameras, task_in_frame=False)


def expected():
    """Where lerobot's own metadata says each episode's frames are."""
    import pyarrow.parquet as pq

    out = {}
    for name in ["av1", "h264", "v21"]:
        root = OUT / name
        info = json.loads((root / "meta/info.json").read_text())
        keys = [k for k, f in info["features"].items() if f["dtype"] == "video"]
        episodes = {}
        if info["codebase_version"].startswith("v3"):
            rows = [r for p in sorted((root / "meta/episodes").rglob("*.parquet")) for r in pq.read_table(p).to_pylist()]
            for row in rows:
                episodes[str(row["episode_index"])] = {
                    key.removeprefix("observation.images."): {
                        "file": info["video_path"].format(video_key=key, chunk_index=row[f"videos/{key}/chunk_index"],
                                                          file_index=row[f"videos/{key}/file_index"]),
                        "from_timestamp": row[f"videos/{key}/from_timestamp"],
                        "codec": info["features"][key]["info"]["video.codec"],
                    } for key in keys}
        else:
            for e in range(len(EPISODES)):
                episodes[str(e)] = {
                    key.removeprefix("observation.images."): {
                        "file": info["video_path"].format(video_key=key, episode_chunk=e // info["chunks_size"],
                                                          episode_index=e),
                        "from_timestamp": 0.0,
                        "codec": info["features"][key]["info"]["video.codec"],
                    } for key in keys}
        out[name] = episodes
    (OUT / "expected.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lerobot-v21", type=Path, help="a folder holding lerobot 0.3.x (writes v2.1)")
    parser.add_argument("--v21-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.v21_only:
        v21()
        return

    # lerobot writes into a fresh folder; keep a v2.1 dataset written earlier when no lerobot 0.3.x
    # is given this time.
    keep = None
    if not args.lerobot_v21 and (OUT / "v21").is_dir():
        keep = Path(tempfile.mkdtemp()) / "v21"
        shutil.copytree(OUT / "v21", keep)
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    both = list(CAMERAS)
    v30("av1", "video", both, splits=True)
    v30("h264", "video", both[:1], vcodec="h264")
    v30("images", "image", both)
    if args.lerobot_v21:
        env = dict(os.environ, PYTHONPATH=str(args.lerobot_v21.resolve()))
        subprocess.run([sys.executable, __file__, "--v21-only"], env=env, check=True)
    elif keep:
        shutil.copytree(keep, OUT / "v21")
    expected()


if __name__ == "__main__":
    main()
