"""Writes a SynthVTG dataset: MP4 videos plus QVHighlights-format annotations per split.

Layout under ``root``::

    videos/<vid>.mp4                     H.264, ``frames_per_clip`` identical frames per clip
    synthvtg_{train,val,test}.jsonl      QVHighlights fields: qid, query, duration, vid, relevant_windows,
                                         relevant_clip_ids, saliency_scores (3 raters, 0-4 scale)
    synthvtg.json                        generation settings and counts

Splits use disjoint videos (different seeds), so val/test are held out from training.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from vtgkit.synth.scenes import Scene, SceneConfig, SceneQuery, generate_queries, generate_scene, render_clip
from vtgkit.synth.video_writer import write_video

DEFAULT_SPLITS: dict[str, int] = {"train": 320, "val": 60, "test": 100}  # videos per split
SALIENCY_SCORE = 4  # every rater gives "very good" to every clip where the named object is visible


def annotation_record(qid: int, vid: str, scene: Scene, query: SceneQuery, clip_len: float) -> dict[str, Any]:
    """One QVHighlights-format line for ``query`` about ``scene``."""
    target = scene.objects[query.object_index]
    clip_ids = list(range(target.start_clip, target.end_clip))
    return {
        "qid": qid,
        "query": query.text,
        "duration": scene.num_clips * clip_len,
        "vid": vid,
        "relevant_windows": [[target.start_clip * clip_len, target.end_clip * clip_len]],
        "relevant_clip_ids": clip_ids,
        "saliency_scores": [[SALIENCY_SCORE] * 3 for _ in clip_ids],
    }


def write_synthvtg(
    root: str | Path,
    *,
    seed: int = 0,
    splits: dict[str, int] | None = None,
    config: SceneConfig | None = None,
    frames_per_clip: int = 2,
) -> dict[str, Any]:
    """Generate every split under ``root`` and return the summary also written to ``synthvtg.json``."""
    root = Path(root)
    config = config or SceneConfig()
    splits = splits or DEFAULT_SPLITS
    qid = 0
    counts: dict[str, dict[str, int]] = {}
    for split_index, (split, num_videos) in enumerate(splits.items()):
        rng = np.random.default_rng([seed, split_index])
        lines = []
        for video_index in range(num_videos):
            scene = generate_scene(rng, config)
            vid = f"synth_{split}_{video_index:05d}"
            frames = (render_clip(scene, clip, config.frame_size)
                      for clip in range(scene.num_clips) for _ in range(frames_per_clip))
            write_video(root / "videos" / f"{vid}.mp4", frames, fps=frames_per_clip / config.clip_len)
            for query in generate_queries(rng, scene, config.queries_per_video):
                qid += 1
                lines.append(annotation_record(qid, vid, scene, query, config.clip_len))
        (root / f"synthvtg_{split}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        counts[split] = {"videos": num_videos, "queries": len(lines)}
    summary = {"seed": seed, "frames_per_clip": frames_per_clip, "scene_config": dataclasses.asdict(config),
               "splits": counts}
    (root / "synthvtg.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
