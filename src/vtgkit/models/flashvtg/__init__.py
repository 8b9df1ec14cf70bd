"""FlashVTG (WACV 2025): model, configuration presets, losses and official-checkpoint conversion."""

from vtgkit.models.flashvtg.config import PRESETS, FlashVTGConfig, config_from_options
from vtgkit.models.flashvtg.model import FlashVTG

__all__ = ["FlashVTG", "FlashVTGConfig", "PRESETS", "config_from_options"]
