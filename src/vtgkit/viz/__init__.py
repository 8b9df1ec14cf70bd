"""Pictures of grounding results: timeline plots, frame thumbnails and a self-contained HTML report.

Needs matplotlib (``vtgkit[viz]``) for plots and PyAV/Pillow (``vtgkit[features]``) for thumbnails; both are imported
only when used.
"""
