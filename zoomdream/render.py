"""The render functions under one name (older import paths): each lives in the module of its job.

``stills`` (a photo, a layer sheet, the audio-features picture), ``video`` and ``zoom`` (the two
animations), ``frameloop`` (the loop they share, and how a render opens and finishes) and
``framecache`` (the work folder that makes renders resumable).
"""

from __future__ import annotations

from .framecache import FrameCache, file_identity, work_folder
from .frameloop import render_inputs, run_frames
from .stills import render_audio_features, render_image, render_sheet
from .video import dream_frames, render_video
from .zoom import render_zoom

__all__ = ["FrameCache", "dream_frames", "file_identity", "render_audio_features", "render_image", "render_inputs",
           "render_sheet", "render_video", "render_zoom", "run_frames", "work_folder"]
