"""The speed benchmarks: each file is a script, ``python benchmarks/speed/NAME.py``.

``make bench`` runs capture, indices, probes and ablation. Each puts the repository root
on ``sys.path`` and imports shared helpers as ``benchmarks.real_prompts``.
"""
