"""Official training checkpoints for the model code: re-exported from :mod:`vtgkit.safe_pickle`.

The reader lives in the neutral :mod:`vtgkit.safe_pickle` so that ``features`` (which never imports ``models``) can
use the same allow-list mechanism for the SlowFast weight pickles.
"""

from __future__ import annotations

from vtgkit.safe_pickle import OFFICIAL_OPTION_GLOBALS, load_restricted_checkpoint, namespace_to_dict

__all__ = ["OFFICIAL_OPTION_GLOBALS", "load_restricted_checkpoint", "namespace_to_dict"]
