"""``vtgkit demo``: grounding end to end, offline, on a shipped SynthVTG video with a small SynthVTG-trained model.

Assets (``vtgkit/assets/``, made by the maintainers with
``vtgkit train synthvtg-r2tuning --output RUN && vtgkit demo --build-assets RUN``):

* ``synthvtg_demo.mp4`` — one held-out SynthVTG test video (coloured shapes appearing and moving);
* ``synthvtg_demo.json`` — its queries with their annotated windows;
* ``synthvtg_r2tuning.safetensors`` + ``.json`` — R²-Tuning trained with ``vtgkit train synthvtg-r2tuning``.

The tiny random CLIP SynthVTG's features were extracted with is not shipped (its 49408-row token table alone is
12 MB): the demo rebuilds it from its seed (``vtgkit.synth.tiny_clip.build_tiny_clip``) and checks the sha256 of its
weights, recorded in ``synthvtg_demo.json``, before using it; the rebuilt file is kept in the vtgkit cache.

The real R²-Tuning checkpoints and CLIP weights are not needed here; with a network, ``Grounder.from_pretrained``
downloads them (``vtgkit ground VIDEO "query"``).

SynthVTG uses QVHighlights' settings (2-s clips, 2-s rounding, NMS 0.7), so the demo runs the same code path as a
released checkpoint: decode, CLIP, R² model, post-processing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parents[1] / "assets"
VIDEO, QUERIES = "synthvtg_demo.mp4", "synthvtg_demo.json"
CHECKPOINT, CLIP = "synthvtg_r2tuning.safetensors", "synthvtg_tiny_clip.safetensors"


def clip_weights_digest(state: dict[str, Any]) -> str:
    """sha256 over the names, shapes and bytes of a state dict's tensors, in name order."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().contiguous().cpu()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def rebuild_tiny_clip(seed: int, expected_sha256: str) -> Path:
    """The demo's tiny CLIP, rebuilt from its seed into the vtgkit cache and verified against the recorded digest."""
    import os

    from safetensors.torch import save_file

    from vtgkit.atomic_files import atomic_path
    from vtgkit.errors import ConfigError
    from vtgkit.synth.tiny_clip import build_tiny_clip

    cache = Path(os.environ.get("VTGKIT_CACHE", Path.home() / ".cache" / "vtgkit")) / "demo"
    target = cache / f"tiny_clip_seed{seed}_{expected_sha256[:12]}.safetensors"
    if target.is_file():
        return target
    state = build_tiny_clip(seed).state_dict()
    found = clip_weights_digest(state)
    if found != expected_sha256:
        raise ConfigError(f"the demo's tiny CLIP rebuilt from seed {seed} has sha256 {found}, not the recorded "
                          f"{expected_sha256} (another torch version draws other random numbers); rebuild the "
                          "demo assets with `vtgkit train synthvtg-r2tuning --output RUN` then "
                          "`vtgkit demo --build-assets RUN`")
    with atomic_path(target) as partial:
        save_file({key: value.contiguous() for key, value in state.items()}, str(partial))
    return target


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="offline demo: ground queries in a shipped SynthVTG video with a small trained model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--query", help="your own query instead of the shipped ones (e.g. 'the red circle')")
    parser.add_argument("--top-k", type=int, default=3, help="moments per query (default 3)")
    parser.add_argument("--output", type=Path, metavar="DIR", help="write the HTML report of the first query to "
                        "DIR/report.html")
    parser.add_argument("--report", type=Path, metavar="FILE", help="HTML report of the first query")
    parser.add_argument("--cut", type=Path, metavar="DIR", help="write the first query's moments as video files")
    parser.add_argument("--build-assets", type=Path, metavar="RUN_DIR",
                        help="maintainers: write the assets from a `vtgkit train synthvtg-r2tuning --output RUN_DIR` "
                             "run (its SynthVTG data in RUN_DIR/synthvtg unless --synth-root) into --assets-dir")
    parser.add_argument("--synth-root", type=Path, help="SynthVTG folder of the run (default RUN_DIR/synthvtg)")
    parser.add_argument("--assets-dir", type=Path, default=ASSETS, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from vtgkit.errors import ConfigError

    if args.build_assets:
        build_demo_assets(args.build_assets, args.synth_root or args.build_assets / "synthvtg", args.assets_dir)
        print(f"vtgkit demo: wrote the demo assets to {args.assets_dir}", file=sys.stderr)
        return 0
    folder = args.assets_dir
    missing = [name for name in (VIDEO, QUERIES, CHECKPOINT, CHECKPOINT.replace(".safetensors", ".json"))
               if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"demo assets missing in {folder}: {', '.join(missing)} (this vtgkit build ships without "
                          "them; maintainers create them with `vtgkit train synthvtg-r2tuning --output RUN` "
                          "then `vtgkit demo --build-assets RUN`)")
    from vtgkit.api import Grounder
    from vtgkit.moment_formats import format_table

    manifest = json.loads((folder / QUERIES).read_text(encoding="utf-8"))
    clip_weights = rebuild_tiny_clip(manifest["clip"]["seed"], manifest["clip"]["sha256"])
    grounder = Grounder.from_pretrained(folder / CHECKPOINT, clip_weights=clip_weights, benchmark="qvhighlights")
    shipped = manifest["queries"]
    items = [{"query": args.query, "relevant_windows": []}] if args.query else shipped
    video = folder / VIDEO
    first = None
    for item in items:
        result = grounder.predict(video, item["query"])
        first = first or (item["query"], result, item["relevant_windows"])
        sys.stdout.write(format_table(result.moments[: args.top_k], query=item["query"]))
        truth = ", ".join(f"{start:g}-{end:g} s" for start, end in item["relevant_windows"])
        sys.stdout.write(f"annotated: {truth}\n\n" if truth else "\n")
    if args.output and not args.report:
        args.report = args.output / "report.html"
    if first is not None and (args.report or args.cut):
        query, result, truth_windows = first
        shown = result.moments[: args.top_k]
        if args.cut:
            from vtgkit.video_cut import cut_moments

            for clip in cut_moments(video, shown, args.cut, overwrite=True):
                print(f"vtgkit demo: wrote {clip.path}", file=sys.stderr)
        if args.report:
            from vtgkit.structures import Moment
            from vtgkit.viz.report import write_report

            args.report.parent.mkdir(parents=True, exist_ok=True)
            write_report(args.report, video=video, query=query, moments=shown, saliency=result.highlights.saliency,
                         clip_len=result.highlights.clip_len, duration=result.highlights.duration,
                         top_k=max(len(shown), 1), details={"checkpoint": CHECKPOINT},
                         ground_truth=[Moment(float(start), float(end)) for start, end in truth_windows])
            print(f"vtgkit demo: wrote {args.report}", file=sys.stderr)
    print("vtgkit demo: this is a tiny model trained on synthetic videos; the released R2-Tuning checkpoints and "
          "the CLIP weights are downloaded by Grounder.from_pretrained / `vtgkit ground VIDEO \"query\"` where "
          "there is a network", file=sys.stderr)
    return 0


def build_demo_assets(run_dir: Path, synth_root: Path, assets: Path, max_queries: int = 3) -> None:
    """Assets from a finished SynthVTG training run: best.pt → vtgkit format, the tiny CLIP, one test video."""
    import json
    import shutil

    from vtgkit.errors import ConfigError
    from vtgkit.models import create_model
    from vtgkit.models.checkpoint_io import torch_load_safely
    from vtgkit.models.r2tuning.convert import save_vtgkit

    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model") != "r2tuning":
        raise ConfigError(f"{run_dir}: a {config.get('model')!r} run; the demo needs synthvtg-r2tuning")
    model = create_model("r2tuning", config["model_preset"], **config.get("model_overrides", {}))
    checkpoint = run_dir / "best.pt" if (run_dir / "best.pt").is_file() else run_dir / "last.pt"
    model.load_state_dict(torch_load_safely(checkpoint)["model"])
    assets.mkdir(parents=True, exist_ok=True)
    save_vtgkit(model.eval(), assets / CHECKPOINT)
    from safetensors.torch import load_file

    summary = json.loads((synth_root / "synthvtg.json").read_text(encoding="utf-8"))
    clip_record = {"seed": summary["features"]["clip_seed"],
                   "sha256": clip_weights_digest(load_file(str(synth_root / "tiny_clip.safetensors")))}
    records = [json.loads(line) for line in (synth_root / "synthvtg_test.jsonl").read_text().splitlines() if line]
    if not records:
        raise ConfigError(f"{synth_root}/synthvtg_test.jsonl has no records")
    vid = records[0]["vid"]
    chosen = [{"query": r["query"], "relevant_windows": r["relevant_windows"]} for r in records if r["vid"] == vid]
    shutil.copyfile(synth_root / "videos" / f"{vid}.mp4", assets / VIDEO)
    source = {"vid": vid, "run": str(run_dir.name), "checkpoint": checkpoint.name}
    manifest = {"source": source, "clip": clip_record, "queries": chosen[:max_queries]}
    (assets / QUERIES).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
