"""The ABC logits processor with real tokenizers and real (tiny) models, judged by abc2midi."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

from chatmusician_hf.constrain import AbcTracker, build_abc_logits_processor, split_utf8, token_bytes_table
from chatmusician_hf.music import extract_tunes, validate_abc

HEADERS = ["X:1\nT:Fuzz\nM:4/4\nL:1/8\nK:D\n", "X:1\nM:6/8\nL:1/8\nK:G\n", "X:1\nM:3/4\nK:Am\n"]


def load(model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    return tokenizer, AutoModelForCausalLM.from_pretrained(model_dir)


def generate(model, tokenizer, prompts, processor=None, seed=0, **kwargs):
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    torch.manual_seed(seed)
    out = model.generate(
        **inputs,
        logits_processor=LogitsProcessorList([processor] if processor else []),
        pad_token_id=tokenizer.pad_token_id,
        **kwargs,
    )
    start = inputs["input_ids"].shape[1]
    # decoded as the processor reads tokens: invalid UTF-8 becomes one U+FFFD per bad sequence, as in the tracker
    table = token_bytes_table(tokenizer)
    return [split_utf8(b"".join(table[i] for i in row[start:].tolist() if i < len(table)))[0] for row in out]


def test_token_bytes_of_the_byte_level_tokenizer(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    table = token_bytes_table(tokenizer)
    text = 'X:1\nT:Élan vital 𝄞\nK:G\n"Am"A2 B>c|'
    ids = tokenizer(text)["input_ids"]
    assert b"".join(table[i] for i in ids) == text.encode()
    assert table[tokenizer.eos_token_id] == b""
    assert any(data and not _decodes(data) for data in table), "the vocabulary holds partial UTF-8 tokens"
    assert split_utf8("é".encode() + b"A\xf0\x9d") == ("éA", b"\xf0\x9d")


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


@pytest.fixture(scope="module")
def sentencepiece_model(tmp_path_factory):
    """A LLaMA-2-like tokenizer (SentencePiece BPE with '▁' spaces and byte fallback) and a small random model."""
    from tokenizers import SentencePieceBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from chatmusician_hf.data.corpus import iter_music21_tunes

    texts = [tune.text for _, tune in zip(range(300), iter_music21_tunes(), strict=False)]
    spm = SentencePieceBPETokenizer()
    spm.train_from_iterator(
        texts, vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=spm, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
    )
    return tokenizer, LlamaForCausalLM(config)


def test_sentencepiece_pieces_decode_with_their_spaces(sentencepiece_model):
    tokenizer, _ = sentencepiece_model
    table = token_bytes_table(tokenizer)
    text = "X:1\nM:6/8\nK:G\nGAG GBd|e2d B2A|"
    ids = tokenizer(text)["input_ids"]
    assert any(tokenizer.convert_ids_to_tokens(i).startswith("\u2581") for i in ids)
    assert b"".join(table[i] for i in ids).decode().lstrip(" ") == text


def _assert_tracker_accepts(prompt: str, generated: str) -> AbcTracker:
    tracker = AbcTracker()
    assert tracker.feed(prompt + generated), (
        f"the processor let an illegal continuation through: {generated!r}"
    )
    return tracker


def _assert_ended_tunes_valid(prompt: str, generated: str, tracker: AbcTracker) -> int:
    """Tunes the generation completed (or that may end where the budget cut them) pass abc2midi."""
    if tracker.in_tune and not tracker.can_end():
        return 0
    checked = 0
    for tune in extract_tunes(prompt + generated):
        report = validate_abc(tune.abc)
        assert report.parses and report.bars_ok, report.summary() + "\n" + tune.abc
        checked += 1
    return checked


def test_sentencepiece_generation_stays_valid(sentencepiece_model):
    tokenizer, model = sentencepiece_model
    processor = build_abc_logits_processor(
        tokenizer, top_k=20, top_p=0.95, temperature=1.0, max_new_tokens=40
    )
    outputs = generate(model, tokenizer, HEADERS, processor, max_new_tokens=40, do_sample=True, top_k=20)
    endable = 0
    for prompt, generated in zip(HEADERS, outputs, strict=True):
        tracker = _assert_tracker_accepts(prompt, generated)
        endable += tracker.can_end()
    assert endable >= 1, "the wind-down before max_new_tokens completes tunes where one token can"
    assert processor.stats["dead_ends"] == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_untrained_model_fuzz(tiny_model_dir, seed):
    """An untrained model samples nearly random tokens: the processor alone keeps the tunes valid, never reaches a
    dead end, and completes every tune before the budget runs out."""
    tokenizer, model = load(tiny_model_dir)
    budget = 48
    processor = build_abc_logits_processor(
        tokenizer, top_k=40, top_p=0.9, temperature=1.0, max_new_tokens=budget
    )
    outputs = generate(
        model, tokenizer, HEADERS, processor, max_new_tokens=budget, do_sample=True, top_k=40, seed=seed
    )
    validated = 0
    for prompt, generated in zip(HEADERS, outputs, strict=True):
        tracker = _assert_tracker_accepts(prompt, generated)
        assert tracker.can_end(), f"the budget cut an unfinished tune: {generated!r}"
        validated += _assert_ended_tunes_valid(prompt, generated, tracker)
    assert validated == len(HEADERS), outputs
    assert processor.stats["dead_ends"] == 0
    free = generate(model, tokenizer, HEADERS, None, max_new_tokens=budget, do_sample=True, top_k=40)
    assert not all(AbcTracker().feed(p + g) for p, g in zip(HEADERS, free, strict=True)), (
        "unconstrained fails"
    )


def test_prose_is_generated_as_without_the_processor(tiny_model_dir):
    tokenizer, model = load(tiny_model_dir)
    prompt = ["Human: Tell me about jigs. </s> Assistant: "]
    processor = build_abc_logits_processor(tokenizer, do_sample=False)
    free = generate(model, tokenizer, prompt, None, max_new_tokens=30, do_sample=False)[0]
    constrained = generate(model, tokenizer, prompt, processor, max_new_tokens=30, do_sample=False)[0]
    tracker = AbcTracker()
    tracker.feed(prompt[0])
    tracker.mark_line_start()
    if tracker.feed(free) and not tracker.in_tune:
        assert constrained == free, "prose must not be touched"
    else:
        pytest.skip("the untrained model happened to start a tune; prose comparison not applicable")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chat_answer_with_a_tune_in_the_middle(tiny_model_dir, seed):
    tokenizer, model = load(tiny_model_dir)
    prompt = ["Human: Write a reel. </s> Assistant: Here it is:\nX:1\nM:2/4\nL:1/16\nK:D\n"]
    processor = build_abc_logits_processor(tokenizer, max_new_tokens=40, temperature=1.0)
    generated = generate(
        model, tokenizer, prompt, processor, max_new_tokens=40, do_sample=True, top_k=40, seed=seed
    )[0]
    tracker = _assert_tracker_accepts(prompt[0], generated)
    assert tracker.can_end(), f"the budget cut an unfinished tune: {generated!r}"
    assert _assert_ended_tunes_valid(prompt[0], generated, tracker) >= 1
    assert processor.stats["dead_ends"] == 0


def test_a_row_that_has_ended_costs_nothing(tiny_model_dir):
    """After a row's end-of-sequence token, generate pads it: the processor must not search legal tokens for it
    (it did, every step to the budget, on the untrained model: half the dead ends of the benchmark)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    processor = build_abc_logits_processor(tokenizer, do_sample=False, max_new_tokens=10)
    eos, vocab = tokenizer.eos_token_id, len(tokenizer)
    ids = torch.tensor([tokenizer("X:1\nM:4/4\nL:1/8\nK:D\nA8|]\n")["input_ids"]])
    scores = torch.zeros(1, vocab)
    scores[0, eos] = 10.0
    assert processor(ids, scores)[0].argmax() == eos, "the tune may end: its end token is legal"
    checked = processor.stats["checked"]
    noise = torch.randn(1, vocab)
    for extra in ([eos], [eos, tokenizer.pad_token_id], [eos, tokenizer.pad_token_id, tokenizer.pad_token_id]):
        assert processor(torch.cat([ids, torch.tensor([extra])], dim=1), noise)[0].argmax() == eos
    assert processor.stats["checked"] == checked and processor.stats["dead_ends"] == 0


def test_builder_rejects_unknown_options(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with pytest.raises(TypeError, match="top_q"):
        build_abc_logits_processor(tokenizer, top_q=3)


def test_trained_model_tunes_are_valid(request):
    """With the lead's briefly trained tiny model: every tune generated from held-out headers passes abc2midi and
    at least 99% of its inner bars fit; the unconstrained rates are printed for comparison."""
    try:
        model_dir = request.getfixturevalue("trained_tiny_model_dir")
    except pytest.FixtureLookupError:
        pytest.skip("the trained_tiny_model_dir fixture is not available")
    from chatmusician_hf.data.corpus import build_music21_corpus

    tokenizer, model = load(model_dir)
    headers = [
        text[: text.index("\nK:") + 1] + text[text.index("\nK:") + 1 :].split("\n", 1)[0] + "\n"
        for text in build_music21_corpus()["validation"]["text"]
    ]
    # the guarantee is for well-formed headers: a held-out header the tracker refuses (one has a bare "3/8=120"
    # line) is invalid before any token is generated
    prompts = [header for header in headers if AbcTracker().feed(header)][:8]
    sampling = dict(do_sample=True, temperature=0.8, top_k=40, top_p=0.95, max_new_tokens=200)
    processor = build_abc_logits_processor(
        tokenizer, **{k: v for k, v in sampling.items() if k != "do_sample"}
    )
    rates = {}
    for name, proc in (("free", None), ("constrained", processor)):
        outputs = generate(model, tokenizer, prompts, proc, **sampling)
        reports = [
            validate_abc(t.abc) for p, g in zip(prompts, outputs, strict=True) for t in extract_tunes(p + g)
        ]
        bars = sum(r.n_bars for r in reports)
        rates[name] = (
            sum(r.parses for r in reports) / len(reports),
            1 - sum(r.n_bad_bars for r in reports) / bars,
        )
    print(f"parse rate / inner bars fitting: {rates}")
    assert rates["constrained"][0] == 1.0 and rates["constrained"][1] >= 0.99, rates


def _toy_processor(**sampling):
    """A processor over a vocabulary of single characters and a few longer tokens, after a 4/4 bar of A8 and an
    A7 being read: some tokens fit the bar, others overflow it."""
    from chatmusician_hf.constrain import AbcLogitsProcessor

    prompt = "X:1\nM:4/4\nL:1/8\nK:C\nA8|A7"
    vocab = sorted(set(prompt)) + ["A2", "C4", "B", "z", "x2", "Z", "B/", "|]", "</s>"]
    token_bytes = [b"" if piece == "</s>" else piece.encode() for piece in vocab]
    processor = AbcLogitsProcessor(token_bytes, [vocab.index("</s>")], **sampling)
    input_ids = torch.tensor([[vocab.index(char) for char in prompt]])
    state = AbcTracker()
    assert state.feed(prompt)
    legal = torch.tensor([bool(piece != "</s>" and state.copy().feed(piece)) for piece in vocab])
    assert 0 < legal.sum() < len(vocab) - 3, "some tokens are legal and several are not"
    return processor, input_ids, legal, vocab


def _warped(scores, temperature, top_k, top_p):
    """The distribution ``generate`` samples from, computed with transformers' own warpers."""
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warped = TemperatureLogitsWarper(temperature)(None, scores.clone())
    if top_k:
        warped = TopKLogitsWarper(top_k)(None, warped)
    if top_p:
        warped = TopPLogitsWarper(top_p)(None, warped)
    return torch.softmax(warped, dim=-1)[0]


@pytest.mark.parametrize(
    "temperature,top_k,top_p", [(1.0, None, None), (0.7, 6, None), (1.3, 8, 0.8), (1.0, 3, None)]
)
def test_sampling_is_the_warped_distribution_restricted_to_legal_tokens(temperature, top_k, top_p):
    """The processor draws the token itself: its distribution must be exactly the one plain sampling would use
    (temperature, top-k, top-p as transformers applies them), restricted to the legal tokens and renormalised; when
    that leaves nothing, the temperature-scaled distribution restricted to legal tokens (the widening)."""
    processor, input_ids, legal, vocab = _toy_processor(
        top_k=top_k, top_p=top_p, temperature=temperature, do_sample=True
    )
    generator = torch.Generator().manual_seed(1)
    scores = torch.randn(1, len(vocab), generator=generator) * 2
    scores[0, vocab.index("</s>")] = -float("inf")  # (an earlier processor's mask is respected too)
    warped = _warped(scores, temperature, top_k, top_p)
    expected = warped * legal
    if expected.sum() == 0:  # no legal token survives the warping: widened
        expected = torch.softmax(scores[0] / temperature, dim=-1) * legal
    expected /= expected.sum()
    torch.manual_seed(0)
    draws = 6000
    counts = torch.zeros(len(vocab))
    for _ in range(draws):
        out = processor(input_ids, scores.clone())
        assert torch.isfinite(out).sum() == 1, "only the chosen token is left for the sampler"
        counts[int(out[0].argmax())] += 1
    observed = counts / draws
    assert counts[~legal].sum() == 0, "an illegal token was chosen"
    tolerance = 4.5 * torch.sqrt(expected * (1 - expected) / draws) + 1e-9
    assert torch.all((observed - expected).abs() <= tolerance), (observed, expected)


def test_widening_draws_from_the_whole_distribution_restricted_to_legal_tokens():
    processor, input_ids, legal, vocab = _toy_processor(top_k=2, top_p=None, temperature=1.0, do_sample=True)
    scores = torch.zeros(1, len(vocab))
    illegal = [i for i in range(len(vocab)) if not legal[i] and vocab[i] != "</s>"]
    scores[0, illegal[:2]] = 10.0  # the top-2 nucleus holds only illegal tokens
    scores[0, vocab.index("</s>")] = -float("inf")
    torch.manual_seed(0)
    counts = torch.zeros(len(vocab))
    for _ in range(3000):
        counts[int(processor(input_ids, scores.clone())[0].argmax())] += 1
    assert counts[~legal].sum() == 0 and processor.stats["widened"] == 3000
    observed = counts[legal] / counts.sum()
    assert torch.all((observed - 1 / int(legal.sum())).abs() < 0.04), "uniform over the legal tokens"


def test_greedy_takes_the_best_legal_token():
    processor, input_ids, legal, vocab = _toy_processor(do_sample=False)
    scores = torch.arange(len(vocab), dtype=torch.float).unsqueeze(0)  # the last tokens score best
    scores[0, vocab.index("</s>")] = -float("inf")
    out = processor(input_ids, scores.clone())
    best_legal = max(i for i in range(len(vocab)) if legal[i])
    assert int(out[0].argmax()) == best_legal and torch.isfinite(out).sum() == 1


def test_a_long_generation_keeps_its_sequence_hashes():
    """Each step extends the hashes of the last one where every row got its chosen token (no re-hashing): past the
    first block of hash weights too, they must equal the hashes of the whole sequences."""
    processor, input_ids, _, vocab = _toy_processor(top_k=None, top_p=None, temperature=1.0, do_sample=True)
    ids = input_ids.repeat(2, 1)
    torch.manual_seed(0)
    for step in range(400):
        out = processor(ids, torch.randn(2, len(vocab)))
        ids = torch.cat([ids, out.argmax(dim=1, keepdim=True)], dim=1)
        if step % 50 == 49:
            assert processor._next_hashes(ids.numpy()) == processor._hashes(ids.numpy()), step
    assert ids.shape[1] > 400


def test_after_a_short_final_bar_the_tune_ends_with_a_blank_line():
    """Only blanks or the end may follow a short final bar: the processor writes the blank line that ends the tune,
    even where the model prefers a space (and never the overflowing note it prefers most)."""
    from chatmusician_hf.constrain import AbcLogitsProcessor

    prompt = "X:1\nM:4/4\nL:1/8\nK:C\nA8|A4| "
    vocab = sorted(set(prompt)) + ["A2", "</s>"]
    processor = AbcLogitsProcessor(
        [b"" if piece == "</s>" else piece.encode() for piece in vocab], [vocab.index("</s>")], do_sample=False
    )
    ids = torch.tensor([[vocab.index(char) for char in prompt]])
    assert AbcTracker().feed(prompt)
    text = ""
    for _ in range(2):
        scores = torch.zeros(1, len(vocab))
        scores[0, vocab.index("A2")], scores[0, vocab.index(" ")] = 3.0, 2.0
        chosen = int(processor(ids, scores)[0].argmax())
        text += vocab[chosen]
        ids = torch.cat([ids, torch.tensor([[chosen]])], dim=1)
    assert text == "\n\n" and processor.stats["ended"] == 2
    tracker = AbcTracker()
    assert tracker.feed(prompt + text) and not tracker.in_tune, "the blank line ended the tune"
