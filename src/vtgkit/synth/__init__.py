"""SynthVTG: small synthetic videos (coloured shapes that appear, move and change) with templated queries, exact
moment and saliency annotations in QVHighlights format, and features from a tiny random CLIP, so that the whole
path video file → features → training → evaluation runs on any machine in minutes.
"""
