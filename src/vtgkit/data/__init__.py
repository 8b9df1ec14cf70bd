"""Benchmark annotations, cached-feature readers, the generic dataset and collation.

Imports only ``vtgkit.structures`` / ``vtgkit.errors`` from the rest of the package (see the import-direction test).
"""

from vtgkit.data.benchmarks import BENCHMARKS, Benchmark, feature_folder_names, get_benchmark
from vtgkit.data.collate import collate_grounding, to_official_layout
from vtgkit.data.features_r2tuning import R2TuningFeatureReader
from vtgkit.data.grounding_dataset import GroundingDataset, GroundingItem, filter_min_duration

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "GroundingDataset",
    "GroundingItem",
    "R2TuningFeatureReader",
    "collate_grounding",
    "feature_folder_names",
    "filter_min_duration",
    "get_benchmark",
    "to_official_layout",
]
