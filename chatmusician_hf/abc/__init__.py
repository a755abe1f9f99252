"""The ABC core: what ABC notation means, defined once, in pure Python with no heavy imports.

Every reader of ABC in the project (the validator and statistics in :mod:`chatmusician_hf.music`, the decoding
tracker in :mod:`chatmusician_hf.constrain`, the SFT task builder in :mod:`chatmusician_hf.data`) takes its
knowledge of keys, meters, lengths and the field and bar-line lexicon from here.

:mod:`.tunebook` reads every tune of an ABC file (:mod:`.standalone` writes each out with the file header in it,
:mod:`.charsets` decodes it); :mod:`.directives` is the policy every path applies before a program sees ABC.
"""
