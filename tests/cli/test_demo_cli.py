"""``vtgkit demo``: building the assets from a (stand-in) SynthVTG run, then running the demo on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tiny_grounder import TINY_R2TUNING, write_tiny_clip, write_video
from vtgkit.synth.tiny_clip import TINY_CLIP_CONFIG


def fake_synthvtg_run(tmp_path: Path, video: Path) -> tuple[Path, Path]:
    """A run folder (config.json + best.pt) and a SynthVTG root with the files build_demo_assets reads."""
    from vtgkit.models import create_model

    run, root = tmp_path / "run", tmp_path / "synthvtg"
    (root / "videos").mkdir(parents=True)
    run.mkdir()
    model = create_model("r2tuning", "qvhighlights", **TINY_R2TUNING)
    (run / "config.json").write_text(json.dumps({"model": "r2tuning", "model_preset": "qvhighlights",
                                                 "model_overrides": TINY_R2TUNING}))
    torch.save({"format": "vtgkit-train/1", "model": model.state_dict()}, run / "best.pt")
    # The demo rebuilds SynthVTG's tiny CLIP from its seed, so the run must have used that very CLIP.
    write_tiny_clip(root / "tiny_clip.safetensors", TINY_CLIP_CONFIG, seed=0)
    (root / "synthvtg.json").write_text(json.dumps({"features": {"clip_seed": 0}}))
    (root / "videos" / "synth_0001.mp4").write_bytes(video.read_bytes())
    records = [{"qid": 1, "vid": "synth_0001", "query": "the red circle", "duration": 20.0,
                "relevant_windows": [[4.0, 10.0]]},
               {"qid": 2, "vid": "synth_0001", "query": "the blue square", "duration": 20.0,
                "relevant_windows": [[12.0, 18.0]]}]
    (root / "synthvtg_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run, root


def test_demo_without_assets_says_what_is_missing(run_vtgkit, tmp_path: Path) -> None:
    code, _, err = run_vtgkit("demo", "--assets-dir", str(tmp_path), model=False)
    assert code == 2
    assert "demo assets missing" in err and "synthvtg_demo.mp4" in err and "Traceback" not in err


def test_demo_builds_assets_and_runs(run_vtgkit, grounding_assets: dict[str, Path], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("av")
    monkeypatch.setenv("VTGKIT_CACHE", str(tmp_path / "cache"))
    run, root = fake_synthvtg_run(tmp_path, write_video(tmp_path / "v.mp4", seconds=20.0))
    assets = tmp_path / "assets"
    code, _, err = run_vtgkit("demo", "--build-assets", str(run), "--synth-root", str(root),
                              "--assets-dir", str(assets), model=False)
    assert code == 0, err
    assert sorted(path.name for path in assets.iterdir()) == [
        "synthvtg_demo.json", "synthvtg_demo.mp4", "synthvtg_r2tuning.json", "synthvtg_r2tuning.safetensors"]
    code, out, err = run_vtgkit("demo", "--assets-dir", str(assets), "--top-k", "2", model=False)
    assert code == 0, err
    assert "query: the red circle" in out and "query: the blue square" in out
    assert "annotated: 4-10 s" in out


def test_demo_refuses_a_tiny_clip_that_does_not_match_its_recorded_digest(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from vtgkit.cli.demo import rebuild_tiny_clip
    from vtgkit.errors import ConfigError

    monkeypatch.setenv("VTGKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match="sha256"):
        rebuild_tiny_clip(0, "0" * 64)
    assert not list((tmp_path / "cache").rglob("*.safetensors"))


@pytest.mark.slow
def test_shipped_demo_grounds_its_queries(run_vtgkit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vtgkit.cli.demo import ASSETS, QUERIES

    if not (ASSETS / QUERIES).is_file():
        pytest.skip(f"this checkout ships no demo assets ({ASSETS / QUERIES} absent)")
    pytest.importorskip("av")
    monkeypatch.setenv("VTGKIT_CACHE", str(tmp_path / "cache"))
    report = tmp_path / "out" / "report.html"
    code, out, err = run_vtgkit("demo", "--report", str(report), model=False)
    assert code == 0, err
    for item in json.loads((ASSETS / QUERIES).read_text())["queries"]:
        assert f"query: {item['query']}" in out
    assert report.is_file() and "<html" in report.read_text().lower()
