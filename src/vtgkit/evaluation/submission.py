"""QVHighlights submission files and the zip layout the (now closed) CodaLab server expected.

The server took one zip holding ``hl_val_submission.jsonl`` and ``hl_test_submission.jsonl`` at its top level (the
files R²-Tuning's ``--dump`` writes, spec r2-tuning.md §5). The test ground truth is public now
(``highlight_test_with_gt.jsonl``), so ``vtgkit evaluate`` scores the test file locally with the same code.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vtgkit.atomic_files import atomic_path, atomic_write
from vtgkit.errors import AnnotationError
from vtgkit.evaluation.io import as_records, qid_index

SUBMISSION_NAMES = {"val": "hl_val_submission.jsonl", "test": "hl_test_submission.jsonl"}


def write_submission(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write prediction dicts as JSON lines (one per query, in the given order), atomically; returns the count."""
    count = 0
    with atomic_write(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
            count += 1
    return count


def package_submission(val_predictions: str | Path, test_predictions: str | Path, output: str | Path) -> Path:
    """Zip the val and test prediction files under the names the QVHighlights server expected.

    Both files are checked first (JSON lines, one record per qid, windows/saliency present) so that a broken
    package is caught here rather than by a server.
    """
    output = Path(output)
    for split, path in (("val", val_predictions), ("test", test_predictions)):
        records = as_records(path, f"{split} predictions")
        qid_index(records)
        for index, row in enumerate(records.rows):
            if "pred_relevant_windows" not in row and "pred_saliency_scores" not in row:
                raise AnnotationError(
                    f"{records.where(index)}: needs 'pred_relevant_windows' and/or 'pred_saliency_scores'"
                )
    with atomic_path(output) as temporary, zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(val_predictions, SUBMISSION_NAMES["val"])
        archive.write(test_predictions, SUBMISSION_NAMES["test"])
    return output
