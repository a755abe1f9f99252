"""chatmusician-hf: language models that read and write music in ABC notation, the Hugging Face way."""

__version__ = "0.1.0"
