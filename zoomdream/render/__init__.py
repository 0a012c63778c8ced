"""Renders: what turns settings and a source into files on disk.

* ``framecache``: the work folder beside an output: frames, manifest, file identity (the resume point).
* ``frameloop``: the one frame loop behind video and zoom, and how a render opens and finishes
  (output checks, backbone, soundtrack, sidecar).
* ``job``: a render's ``Clip`` (what is rendered) and ``Output`` (where and how it is written), built
  once by each public render and passed inward.
* ``stills``: a dreamed photo, a sheet of one dream per layer, the picture of a soundtrack's features.
* ``video``: ``render_video``, each frame carrying the flow-warped dream of the one before.
* ``zoom``: ``render_zoom``, the infinite zoom.

This package may import every other part of zoomdream except ``scale``, which builds on it.
"""

__all__: list[str] = []
