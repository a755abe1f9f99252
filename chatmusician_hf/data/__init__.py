"""Data: the embedded music corpus, Hub/local dataset sources, SFT tasks and formatting, packing."""
