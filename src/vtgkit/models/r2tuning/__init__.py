"""R²-Tuning (ECCV 2024): model, configuration presets, criterion and official-checkpoint conversion."""

from vtgkit.models.r2tuning.config import PRESETS, TRAINING_PRESETS, R2TuningConfig, R2TuningTrainingConfig
from vtgkit.models.r2tuning.loss import R2TuningLoss
from vtgkit.models.r2tuning.model import R2Tuning

__all__ = ["PRESETS", "TRAINING_PRESETS", "R2Tuning", "R2TuningConfig", "R2TuningLoss", "R2TuningTrainingConfig"]
