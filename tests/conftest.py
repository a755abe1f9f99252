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


@pytest.fixture(scope="session")
def trained_tiny_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model after a short run of the tiny CPT recipe, merged into a full model folder (about 1-2 min).

    Good enough to write tune-shaped text (headers, bars); not a quality model: the quickstart trains longer.
    """
    from pathlib import Path

    from chatmusician_hf import cpt
    from chatmusician_hf.merge import MergeArguments
    from chatmusician_hf.merge import main as merge

    work = tmp_path_factory.mktemp("trained-tiny")
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "cpt_lora.yaml"
    argv = ["--config", str(recipe), "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(work / "cpt"),
            "--max_steps", "120", "--max_length", "256", "--eval_strategy", "no", "--save_strategy", "no",
            "--disable_tqdm", "true"]
    cpt.main(*cpt.make_parser().parse_args_and_config(argv))
    merge(MergeArguments(base=str(tiny_model_dir), adapter=str(work / "cpt"), output_dir=str(work / "merged")))
    return work / "merged"


@pytest.fixture(scope="session")
def sentencepiece_tokenizer_dir():
    """A LLaMA-2-style SentencePiece BPE tokenizer folder (32,000 pieces, byte fallback; see
    ``tests/llama_style_tokenizer.py``): trained once (about 20 s), then read from the datasets cache."""
    from llama_style_tokenizer import cached_tokenizer_dir

    return cached_tokenizer_dir()


@pytest.fixture(scope="session")
def sentencepiece_model_dir(sentencepiece_tokenizer_dir, tmp_path_factory):
    """An untrained tiny ``LlamaForCausalLM`` over that tokenizer's vocabulary, saved with the tokenizer."""
    from llama_style_tokenizer import build_untrained_model

    return build_untrained_model(sentencepiece_tokenizer_dir, tmp_path_factory.mktemp("sentencepiece-model"))
