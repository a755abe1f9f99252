"""Support for the project's tests: a local Hub server, LoRA adapters that move the logits, headless Chromium."""
