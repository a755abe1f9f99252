"""Data: the embedded music corpus, Hub/local dataset sources, SFT tasks and formatting, pretraining blocks.

- :mod:`.config`: ``DataArguments``, the recipe options every training stage shares, and the cache folder;
- :mod:`.sources`: Hub IDs, local files and mixtures as rows (``load_rows``);
- :mod:`.pretraining`: ``build_pretraining_dataset`` (packed blocks with per-document ``position_ids``), made of
  :mod:`.augment` (transposed tunes), :mod:`.token_batches` and :mod:`.encoding` (batch tokenisation, through
  :mod:`.piece_encoder` and :mod:`.pretokenize` where they apply) and :mod:`.packing` (blocks, stats, Arrow);
- :mod:`.sft_format`: ``build_sft_dataset`` (ChatMusician conversations with their loss masks);
- :mod:`.corpus` / :mod:`.tasks`: the music21 tunes and the SFT tasks built from them.
"""
