from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="plots need matplotlib (vtgkit[viz])")

from vtgkit.structures import Moment  # noqa: E402
from vtgkit.viz.report import build_report, write_report  # noqa: E402

QUERY = '<script>alert("x")</script> a man & his dog'


def test_report_is_self_contained_and_escaped(graylevel_video: Path, tmp_path: Path) -> None:
    moments = [Moment(1.0, 2.0, 0.9), Moment(0.0, 0.6, 0.5)]
    path = write_report(
        tmp_path / "report.html", video=graylevel_video, query=QUERY, moments=moments, saliency=np.linspace(0, 1, 3),
        clip_len=1.0, ground_truth=[Moment(1.2, 2.2)], details={"model": "r2tuning <test>"},
    )
    page = path.read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;" in page and "&amp; his dog" in page
    assert "r2tuning &lt;test&gt;" in page and "test video.mp4" in page
    # No external resources: every src is an inline data URI.
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources and all(source.startswith("data:image/") for source in sources)
    assert sum(source.startswith("data:image/png") for source in sources) == 1
    thumbs = [source for source in sources if source.startswith("data:image/jpeg")]
    assert len(thumbs) == 2
    assert base64.b64decode(thumbs[0].split(",", 1)[1])[:3] == b"\xff\xd8\xff"
    assert page.count("<tr>") == 3  # header + two moments
    assert "0:01.0" in page and "0.9000" in page


def test_report_without_thumbnails_or_moments(tmp_path: Path) -> None:
    page = build_report(
        video=tmp_path / "absent.mp4", query="q", moments=[], saliency=[0.1, 0.2], clip_len=2.0, thumbnails=True
    )
    assert "No moments found." in page  # no frames needed, so the missing video is not opened
    page = build_report(
        video=tmp_path / "absent.mp4", query="q", moments=[Moment(0, 2, 1.0)], saliency=None, clip_len=2.0,
        thumbnails=False,
    )
    assert "data:image/jpeg" not in page and "<th>frame</th>" not in page
