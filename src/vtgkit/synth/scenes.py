"""SynthVTG scenes: coloured shapes on plain backgrounds that appear, move, grow or shrink, and disappear.

Each video has a few objects of distinct colours; each object is visible during one window of clips. Queries name
one object's colour (and shape), so the ground-truth moment is exactly that object's window and the ground-truth
saliency is exactly its visible clips. Everything is drawn from a ``numpy.random.Generator``: same seed, same data.

Letters: T clips, S frame side in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Saturated colours far apart in RGB; backgrounds are dark greys so no background looks like an object.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "green": (30, 200, 40),
    "blue": (40, 70, 235),
    "yellow": (235, 225, 40),
    "magenta": (220, 40, 220),
    "cyan": (40, 215, 225),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
# Colour-only wording: the probe learned colour-only queries quickly and stalled on colour-and-shape ones.
QUERY_TEMPLATES: tuple[str, ...] = (
    "a {colour} shape appears",
    "the {colour} object is visible",
    "something {colour} moves on the screen",
    "when is the {colour} thing shown",
)


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn. Defaults are sized for a learning run of a few minutes on 2 CPU cores."""

    frame_size: int = 64  # S, pixels (square frames)
    clip_len: float = 2.0  # seconds per clip (QVHighlights' 0.5 fps)
    min_clips: int = 12
    max_clips: int = 24
    min_objects: int = 2
    max_objects: int = 3
    min_window: int = 3  # clips
    max_window_fraction: float = 0.4  # longest window as a fraction of the video
    # Large objects: a frame is only 4x4 patches, and a small object barely moves a random CLIP's tokens.
    min_radius: float = 12.0  # pixels
    max_radius: float = 20.0
    queries_per_video: int = 2


@dataclass(frozen=True)
class SceneObject:
    colour: str
    shape: str
    start_clip: int  # first visible clip
    end_clip: int  # one past the last visible clip
    path: np.ndarray  # (end - start, 2) centre (x, y) in pixels per visible clip
    radius: np.ndarray  # (end - start,) pixels per visible clip


@dataclass(frozen=True)
class Scene:
    num_clips: int
    background: tuple[int, int, int]
    objects: tuple[SceneObject, ...]


@dataclass(frozen=True)
class SceneQuery:
    """One query about a scene: its text and the object it names (index into ``Scene.objects``)."""

    text: str
    object_index: int


def generate_scene(rng: np.random.Generator, config: SceneConfig) -> Scene:
    """Draw one scene: length, background, and objects of distinct colours with their windows and motion."""
    num_clips = int(rng.integers(config.min_clips, config.max_clips + 1))
    grey = int(rng.integers(30, 90))
    tint = rng.integers(-12, 13, size=3)
    background = tuple(int(np.clip(grey + t, 0, 255)) for t in tint)
    num_objects = int(rng.integers(config.min_objects, config.max_objects + 1))
    colours = rng.choice(list(COLOURS), size=num_objects, replace=False)
    max_window = max(config.min_window, int(config.max_window_fraction * num_clips))
    objects = []
    for colour in colours:
        length = int(rng.integers(config.min_window, max_window + 1))
        start = int(rng.integers(0, num_clips - length + 1))
        margin = config.max_radius
        ends = rng.uniform(margin, config.frame_size - margin, size=(2, 2))  # start / end centre
        steps = np.linspace(0.0, 1.0, length)[:, None]
        path = ends[0] + (ends[1] - ends[0]) * steps  # (length, 2)
        radii = rng.uniform(config.min_radius, config.max_radius, size=2)
        radius = radii[0] + (radii[1] - radii[0]) * steps[:, 0]
        shape = str(rng.choice(SHAPES))
        objects.append(SceneObject(str(colour), shape, start, start + length, path, radius))
    return Scene(num_clips=num_clips, background=background, objects=tuple(objects))


def generate_queries(rng: np.random.Generator, scene: Scene, count: int) -> list[SceneQuery]:
    """``count`` queries about distinct objects of ``scene`` (fewer if it has fewer objects)."""
    chosen = rng.choice(len(scene.objects), size=min(count, len(scene.objects)), replace=False)
    queries = []
    for index in sorted(int(i) for i in chosen):
        target = scene.objects[index]
        template = QUERY_TEMPLATES[int(rng.integers(len(QUERY_TEMPLATES)))]
        queries.append(SceneQuery(template.format(colour=target.colour, shape=target.shape), index))
    return queries


def render_clip(scene: Scene, clip: int, size: int) -> np.ndarray:
    """The frame shown during clip ``clip``: uint8 (S, S, 3) RGB. Later objects are drawn over earlier ones."""
    frame = np.empty((size, size, 3), dtype=np.uint8)
    frame[:] = scene.background
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    for obj in scene.objects:
        if not obj.start_clip <= clip < obj.end_clip:
            continue
        (cx, cy), radius = obj.path[clip - obj.start_clip], obj.radius[clip - obj.start_clip]
        dx, dy = xs - cx, ys - cy
        if obj.shape == "circle":
            mask = dx**2 + dy**2 <= radius**2
        elif obj.shape == "square":
            mask = (np.abs(dx) <= radius * 0.85) & (np.abs(dy) <= radius * 0.85)
        else:  # upward triangle inside the circle's bounding box
            mask = (dy <= radius * 0.8) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) * 0.6)
        frame[mask] = COLOURS[obj.colour]
    return frame
