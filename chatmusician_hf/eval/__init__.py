"""Evaluation: MusicTheoryBench (the paper's perplexity and generation protocols), its lm-eval task, and MMLU.

``chatmusician-hf eval music-theory-bench`` and ``chatmusician-hf eval mmlu`` are the entry points (see ``cli.py``).
"""
