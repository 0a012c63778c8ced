"""zoomdream: DeepDream for photos and videos (TensorFlow 2 / Keras 3).

The public API mirrors the command line::

    import zoomdream
    settings = zoomdream.load_preset("default")
    out = zoomdream.dream_image(rgb_uint8, settings=settings.dream, seed=0)
    zoomdream.render_video("clip.mp4", "dream.mp4", settings=settings)
    zoomdream.render_zoom("photo.jpg", "zoom.mp4", settings=settings)

Names are imported lazily, so importing zoomdream (and ``zoomdream --help``) does not
import TensorFlow.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ZoomdreamError": "errors",
    "Settings": "settings",
    "DreamSettings": "settings",
    "VideoSettings": "settings",
    "ZoomSettings": "settings",
    "merge": "settings",
    "load_preset": "settings.presets",
    "bundled_presets": "settings.presets",
    "load_backbone": "backbones",
    "Objective": "objectives",
    "layer": "objectives",
    "guide": "objectives",
    "dream_image": "dream",
    "load_image": "media.images",
    "save_image": "media.images",
    "render_image": "render.stills",
    "render_sheet": "render.stills",
    "render_video": "render.video",
    "render_zoom": "render.zoom",
    "render_audio_features": "render.stills",
    "render_video_ray": "scale",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoomdream' has no attribute '{name}'")


def __dir__():
    return __all__
