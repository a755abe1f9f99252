"""Shared fixtures: the tiny embedded-default model, built once per test session."""

from __future__ import annotations

import os
import shutil

import pytest

# Tests never reach the Hub: a Hub ID that is not a local path must fail fast instead of hanging on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """An untrained tiny model + tokenizer folder made by ``init-tiny`` (about 20 s, once per session)."""
    from chatmusician_hf.tiny import InitTinyArguments, main

    out = tmp_path_factory.mktemp("tiny-base")
    main(InitTinyArguments(output_dir=str(out)))
    return out


@pytest.fixture
def tiny_model_copy(tiny_model_dir, tmp_path):
    """A private copy of the tiny model folder for tests that write into it."""
    dest = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, dest)
    return dest
