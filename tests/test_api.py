"""The public surface: every name of ``zoomdream.__all__`` stays, and the entry points stay keyword-only.

The expected lists are written out here on purpose: removing a name or turning a keyword-only
argument into a positional one must be a deliberate change that edits this file too.
"""

import importlib
import inspect
import pkgutil

import pytest

import zoomdream

PUBLIC = {
    "ZoomdreamError", "Settings", "DreamSettings", "VideoSettings", "ZoomSettings", "merge", "load_preset",
    "bundled_presets", "load_backbone", "Objective", "layer", "guide", "dream_image", "load_image", "save_image",
    "render_image", "render_sheet", "render_video", "render_zoom", "render_audio_features", "render_video_ray",
    "__version__",
}

# name -> (positional parameters, in order; keyword-only parameters)
SIGNATURES = {
    "dream_image": (["image"], ["settings", "backbone", "seed", "frame", "guide", "objective", "mask", "progress"]),
    "render_image": (["input", "output"], ["settings", "overwrite", "quiet"]),
    "render_sheet": (["input", "output"], ["settings", "layers", "cell", "overwrite", "quiet"]),
    "render_video": (["input", "output"], ["settings", "start", "end", "preview", "fps", "crf", "keep_frames",
                                           "restart", "overwrite", "mask", "audio", "quiet"]),
    "render_zoom": (["input", "output"], ["settings", "crf", "keep_frames", "restart", "overwrite", "audio",
                                          "quiet"]),
    "render_video_ray": (["input", "output"], ["settings", "workers", "address", "chunk", "warmup", "fade", "start",
                                               "end", "preview", "fps", "crf", "keep_frames", "restart", "overwrite",
                                               "mask", "audio", "quiet"]),
    "load_preset": (["name_or_path"], []),
    "load_backbone": (["name"], ["weights", "precision", "fold"]),
}


def test_every_public_name_is_exported_and_resolves():
    missing = PUBLIC - set(zoomdream.__all__)
    assert not missing, f"gone from zoomdream.__all__: {sorted(missing)}"
    for name in zoomdream.__all__:
        assert getattr(zoomdream, name) is not None, name
    assert sorted(dir(zoomdream)) == sorted(zoomdream.__all__)
    with pytest.raises(AttributeError, match="no attribute 'dream_video'"):
        zoomdream.dream_video  # never exported


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_entry_points_keep_their_keyword_only_signature(name):
    params = inspect.signature(getattr(zoomdream, name)).parameters.values()
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword_only = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
    want_positional, want_keyword_only = SIGNATURES[name]
    assert positional == want_positional
    lost = [k for k in want_keyword_only if k not in keyword_only]
    assert not lost, f"{name} lost keyword-only arguments {lost}"
    assert not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)  # no catch-alls that hide typos


def test_every_module_all_names_something_that_exists():
    modules = [m.name for m in pkgutil.walk_packages(zoomdream.__path__, "zoomdream.") if m.name != "zoomdream.__main__"]
    checked = 0
    for name in modules:
        module = importlib.import_module(name)
        for public in getattr(module, "__all__", ()):
            assert hasattr(module, public), f"{name}.__all__ names {public}, which is not there"
            checked += 1
    assert checked > 50
