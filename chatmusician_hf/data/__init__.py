"""Data: the embedded music corpus, Hub/local dataset sources, SFT tasks and formatting, packing.

- :mod:`.config`: ``DataArguments``, the recipe options every training stage shares;
- :mod:`.sources`: Hub IDs, local files and mixtures as rows (``load_rows``), ``DatasetSourceError``;
- :mod:`.packing`: ``build_pretraining_dataset`` (packed blocks with per-document ``position_ids``);
- :mod:`.sft_format`: ``build_sft_dataset`` (ChatMusician conversations with their loss masks);
- :mod:`.corpus` / :mod:`.tasks`: the music21 tunes and the SFT tasks built from them.
"""
