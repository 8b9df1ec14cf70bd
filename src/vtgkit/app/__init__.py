"""The optional web page of ``vtgkit serve`` (extra ``vtgkit[app]``): upload a video or pick the sample, type a
query, see the timeline and play the moments found.

Built on the api-level :class:`vtgkit.api.Grounder` only (``tests/test_import_direction.py``). FastAPI and uvicorn
are imported by :mod:`vtgkit.app.server`; :func:`require_web_packages` says plainly what to install when they are
missing.
"""

from __future__ import annotations

import importlib.util

from vtgkit.errors import ConfigError

WEB_PACKAGES = ("fastapi", "uvicorn")


def require_web_packages() -> None:
    """ConfigError naming the missing packages and the install command when the ``app`` extra is not installed."""
    missing = [name for name in WEB_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"the web page needs {' and '.join(missing)}, which are not installed: "
                          "pip install 'vtgkit[app]'")
