"""Time ``vtgkit evaluate`` on the full QVHighlights val and test splits with synthetic predictions.

    python benchmarks/bench_evaluate.py [--official PATH/TO/moment_detr] [--repeats 3]

For each split it writes synthetic predictions (``synthetic_predictions.py``: unsorted lists, ties, duplicates,
single windows, saliency of the wrong length), then times (a) the in-process ``evaluate`` call and (b) the whole
``vtgkit evaluate`` command. With ``--official`` (a checkout of jayleicn/moment_detr; needs scikit-learn) it also
times ``python standalone_eval/eval.py`` on the same files and checks that both JSON files are equal. Prints the
machine load next to the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_predictions import write_synthetic  # noqa: E402

ANNOTATIONS = (
    Path(os.environ.get("VTGKIT_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "annotations"
)
SPLITS = {
    "val": ANNOTATIONS / "qvhighlights" / "highlight_val_release.jsonl",
    "test": ANNOTATIONS / "qvhighlights" / "highlight_test_with_gt.jsonl",
}


def _timed(command: list[str], cwd: str | None = None) -> tuple[float, float]:
    """Wall time and CPU time (user + sys of the command and all its child processes) in seconds."""
    # The official script imports `standalone_eval.utils`: its checkout must be on PYTHONPATH (as eval_sample.sh does).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [cwd, os.environ.get("PYTHONPATH")])))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", help="path of a jayleicn/moment_detr checkout (standalone_eval/)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from vtgkit.evaluation import evaluate

    print(f"load average before: {os.getloadavg()}  (2-core machine shared with other jobs)")
    with tempfile.TemporaryDirectory() as tmp:
        for split, ground_truth in SPLITS.items():
            if not ground_truth.is_file():
                print(f"{split}: {ground_truth} not found, skipped")
                continue
            predictions = Path(tmp) / f"{split}_preds.jsonl"
            count = write_synthetic(ground_truth, predictions, seed=0, grid=2.0, saliency=True)
            in_process, in_process_cpu = [], []
            for _ in range(args.repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                result = evaluate("qvhighlights", predictions, ground_truth)
                in_process.append(time.perf_counter() - start)
                in_process_cpu.append(time.process_time() - start_cpu)
            ours = Path(tmp) / f"{split}_vtgkit.json"
            command = [
                sys.executable,
                "-m",
                "vtgkit.cli.main",
                "evaluate",
                "--dataset",
                "qvhighlights",
                "--quiet",
                "--predictions",
                str(predictions),
                "--ground-truth",
                str(ground_truth),
                "--output",
                str(ours),
            ]
            whole, whole_cpu = min(_timed(command) for _ in range(args.repeats))
            line = (
                f"{split}: {count} queries  vtgkit evaluate() wall {min(in_process):.3f} s cpu "
                f"{min(in_process_cpu):.3f} s | whole command wall {whole:.2f} s cpu {whole_cpu:.2f} s"
            )
            if args.official:
                official_json = Path(tmp) / f"{split}_official.json"
                official, official_cpu = _timed(
                    [
                        sys.executable,
                        "standalone_eval/eval.py",
                        "--submission_path",
                        str(predictions),
                        "--gt_path",
                        str(ground_truth),
                        "--save_path",
                        str(official_json),
                        "--not_verbose",
                    ],
                    cwd=args.official,
                )
                same = json.loads(official_json.read_text()) == json.loads(ours.read_text())
                line += (
                    f" | official wall {official:.2f} s cpu {official_cpu:.2f} s | speed-up wall "
                    f"{official / whole:.1f}x cpu {official_cpu / whole_cpu:.1f}x | identical JSON: {same}"
                )
            print(line, flush=True)
            assert result["brief"], "empty result"
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
