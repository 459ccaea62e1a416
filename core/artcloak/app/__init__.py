"""``artcloak app``: a local web page for artists whose editor has no plugin.

The job logic (queue, worker thread, cancel, temporary folders, limits, result figures) lives in
plain modules importable without Gradio; ``ui.py`` is the thin Gradio layer, imported only when the
command runs.
"""
