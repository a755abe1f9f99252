"""The ABC core: what ABC notation means, defined once, in pure Python with no heavy imports.

:mod:`.lexicon` (the characters of music, field letters, bar lines, chord symbols and decorations), :mod:`.keys`,
:mod:`.meters` and :mod:`.lengths` read ABC as abc2midi reads it; where a reader must be stricter (the decoding
tracker, which decides what a model may write), a ``strict`` reading or grammar says so. Every reader of ABC in the
project -- the validator and statistics in :mod:`chatmusician_hf.music`, the decoding tracker in
:mod:`chatmusician_hf.constrain`, the SFT task builder in :mod:`chatmusician_hf.data` -- takes its knowledge of
keys, meters, lengths and the field and bar-line lexicon from here.

:mod:`.tunebook` reads every tune of an ABC file (:mod:`.standalone` writes each out with the file header in it,
:mod:`.charsets` decodes it); :mod:`.directives` is the policy every path applies before a program sees ABC.
"""
