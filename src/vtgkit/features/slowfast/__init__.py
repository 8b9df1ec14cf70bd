"""SlowFast R50 8×8 clip features (2304-d, float16) as HERO_Video_Feature_Extractor makes them for the Moment-DETR
family (FlashVTG's SlowFast+CLIP setups): :mod:`.model` the network, :mod:`.key_table` + :mod:`.weights` the released
weight formats, :mod:`.sampling` clip cutting and preprocessing, :mod:`.encoder` the runner used by ``vtgkit extract``.
"""

from vtgkit.features.slowfast.encoder import SlowFastEncoder
from vtgkit.features.slowfast.model import SlowFast, SlowFastConfig
from vtgkit.features.slowfast.weights import load_slowfast

__all__ = ["SlowFast", "SlowFastConfig", "SlowFastEncoder", "load_slowfast"]
