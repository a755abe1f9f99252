"""Music-aware decoding: generate ABC tunes that are valid by construction.

:class:`AbcTracker` follows text character by character and knows which continuations keep a tune valid;
:class:`AbcLogitsProcessor` (built by :func:`build_abc_logits_processor`) uses it to mask illegal tokens during
``model.generate``.
"""

from .processor import AbcLogitsProcessor, build_abc_logits_processor
from .token_text import split_utf8, token_bytes_table
from .tracker import AbcTracker

__all__ = [
    "AbcLogitsProcessor",
    "AbcTracker",
    "build_abc_logits_processor",
    "split_utf8",
    "token_bytes_table",
]
