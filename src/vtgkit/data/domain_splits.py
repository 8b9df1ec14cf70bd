"""Per-domain train/val video lists of TVSum and YouTube Highlights (R²-Tuning's ``TVSUM_SPLITS`` /
``YOUTUBE_SPLITS`` tables, stored as JSON ``{domain: {"train": [vid, ...], "val": [vid, ...]}}``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from vtgkit.data.annotation_fields import read_json_object
from vtgkit.errors import AnnotationError
from vtgkit.structures import GroundingSample

SPLIT_NAMES = ("train", "val")


def read_domain_splits(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """Load and validate a splits table."""
    table = read_json_object(path)
    for domain, splits in table.items():
        if not isinstance(splits, dict) or not all(
            isinstance(splits.get(name), list) and all(isinstance(vid, str) for vid in splits[name])
            for name in SPLIT_NAMES
        ):
            raise AnnotationError(f"{path}: key '{domain}' must be {{\"train\": [video ids], \"val\": [video ids]}}; "
                                  f"got {str(splits)[:80]}")
    return table


def select_domain_split(
    samples: list[GroundingSample],
    splits_path: str | Path,
    domain: str,
    split: str,
) -> tuple[list[GroundingSample], Counter[str]]:
    """Samples of one domain's split, in the split table's order (the order the official dataset iterates).

    Videos listed in the table but absent from the annotations are skipped as the official code skips them
    (``[s for s in SPLITS[domain][split] if s in label]``), but counted: the returned ``Counter`` has
    ``"listed in the split but not in the annotations"`` for each, for the caller to report.
    """
    if split not in SPLIT_NAMES:
        raise AnnotationError(f"split must be one of {SPLIT_NAMES}; got {split!r}")
    table = read_domain_splits(splits_path)
    if domain not in table:
        raise AnnotationError(f"{splits_path}: no domain {domain!r}; domains: {sorted(table)}")
    by_vid = {sample.vid: sample for sample in samples}
    kept: list[GroundingSample] = []
    skipped: Counter[str] = Counter()
    for vid in table[domain][split]:
        if vid in by_vid:
            kept.append(by_vid[vid])
        else:
            skipped["listed in the split but not in the annotations"] += 1
    return kept, skipped
