"""Text boundaries: bytes decoded and strings checked once at every entry point, each refusal one line.

``render`` (file and stdin), ``generate`` (input files, sampling flags), ``chat`` (terminal input) and the ABC
layer's public functions, given invalid UTF-8, lone surrogates, NUL characters and NaN or infinite numbers. The
Space's side is in ``tests/test_space.py``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_corpus import assert_files_clean, assert_no_secret, hostile, plant_secret

from chatmusician_hf.chat import ChatArguments, ChatSession, render_tunes
from chatmusician_hf.inference import GenerationArguments, ModelArguments, load_model
from chatmusician_hf.music import AbcError, render_abc, transpose_abc, validate_abc
from chatmusician_hf.text_input import TextInputError, check_text, decode_utf8, finite_number

REPO = Path(__file__).resolve().parents[1]
TUNE = "X:1\nT:Plain\nM:4/4\nL:1/8\nK:G\nGABc dedB|dBGB A2D2|\n"


def cli(*args: str, stdin: bytes = b"", cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chatmusician_hf.cli", *args],
        input=stdin,
        capture_output=True,
        timeout=600,
        cwd=cwd,
    )


def one_line_error(run: subprocess.CompletedProcess, command: str) -> str:
    """The refusal: exit code 2, one line on standard error, no traceback."""
    stderr = run.stderr.decode()
    assert run.returncode == 2, stderr
    assert "Traceback" not in stderr and "Traceback" not in run.stdout.decode()
    (line,) = stderr.strip().splitlines()
    assert line.startswith(f"chatmusician-hf {command}: error: ")
    return line


# ---------------------------------------------------------------- the checks themselves


def test_decoding_and_checks_name_the_problem_and_where():
    assert decode_utf8("\ufeffK:C é".encode(), "x") == "K:C é"
    with pytest.raises(TextInputError, match=r"^f.abc is not valid UTF-8 \(byte 0xff at offset 4\)"):
        decode_utf8(b"K:C\n\xff", "f.abc")
    with pytest.raises(TextInputError, match=r"not valid UTF-8 \(byte 0xed at offset 0\)"):
        decode_utf8("\udcff".encode("utf-8", "surrogatepass"), "f")  # CESU-style surrogate bytes
    with pytest.raises(
        TextInputError, match=r"^the prompt contains a lone surrogate \(U\+DCFF\) at character 3"
    ):
        check_text("abc\udcff", "the prompt")
    with pytest.raises(TextInputError, match=r"contains a NUL character at character 1 \(binary data\?\)"):
        check_text("a\x00", "the prompt")
    with pytest.raises(TextInputError, match="must be text, got bytes"):
        check_text(b"K:C", "the prompt")
    assert finite_number("0.5", "Top-p") == 0.5
    for bad in (math.nan, math.inf, -math.inf, "nan", "Infinity"):
        with pytest.raises(TextInputError, match="^Top-p must be a finite number"):
            finite_number(bad, "Top-p")
    for bad in (None, "x", True, [1]):
        with pytest.raises(TextInputError, match="^Top-p must be a number"):
            finite_number(bad, "Top-p")


@pytest.mark.parametrize("bad", ["X:1\nK:C\nC\udcffD|", "X:1\nK:C\nC\x00D|"])
def test_the_abc_layer_refuses_with_one_line(bad, tmp_path):
    for call in (
        lambda: validate_abc(bad),
        lambda: render_abc(bad, tmp_path),
        lambda: transpose_abc(bad, 2),
    ):
        with pytest.raises(AbcError, match=r"^ABC text contains (a lone surrogate|a NUL)") as err:
            call()
        assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir()), "nothing was written"


# ---------------------------------------------------------------- render


def test_render_refuses_bad_bytes_and_an_out_that_is_a_file(tmp_path):
    line = one_line_error(
        cli("render", "-", "--out", str(tmp_path / "o"), stdin=b"X:1\nK:C\n\xffCDE|\n"), "render"
    )
    assert line.endswith("standard input is not valid UTF-8 (byte 0xff at offset 8); save it as UTF-8 first")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("X:1\nT:Caf\u00e9\nK:C\nCDE|\n".encode("latin-1"))
    line = one_line_error(cli("render", str(latin1), "--out", str(tmp_path / "o")), "render")
    assert f"{latin1} is not valid UTF-8 (byte 0xe9 at offset 9)" in line
    # an .abc file is a tunebook, read as ABC 2.1 says: its declared character set, else UTF-8, else latin-1
    book = latin1.rename(tmp_path / "latin1.abc")
    run = cli("render", str(book), "--midi", "--out", str(tmp_path / "book"))
    assert run.returncode == 0 and "byte 0xe9 is not utf-8 (not declared); read as ISO-8859-1" in run.stderr.decode()
    assert "T:Caf\u00e9" in (tmp_path / "book" / "latin1.abc").read_text(encoding="utf-8")
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    tune = tmp_path / "tune.abc"
    tune.write_text(TUNE)
    line = one_line_error(cli("render", str(tune), "--out", str(taken)), "render")
    assert line.endswith(f"--out {taken} is a file; give a folder to write into")
    assert taken.read_text() == "keep me", "nothing lost"
    line = one_line_error(
        cli("render", str(tune), "--out", str(tmp_path / "o"), "--max_audio_seconds", "nan"), "render"
    )
    assert line.endswith("max_audio_seconds must be a positive number, got nan")
    line = one_line_error(
        cli("render", str(tune), "--out", str(tmp_path / "o"), "--timeout", "inf"), "render"
    )
    assert line.endswith("--timeout must be a finite number, got inf")
    assert not (tmp_path / "o").exists()


def test_render_cli_on_a_hostile_tune_reports_the_directive_and_leaks_nothing(tmp_path):
    secret = plant_secret(tmp_path)
    tune = tmp_path / "hostile.abc"
    tune.write_text(hostile("abc_include", secret))
    run = cli("render", str(tune), "--out", str(tmp_path / "out"), "--max_audio_seconds", "3")
    assert run.returncode == 0, run.stderr.decode()
    stdout, stderr = run.stdout.decode(), run.stderr.decode()
    assert "line 3: %%abc-include reads a file on the machine running the tools" in stdout
    assert "the limit is 3 s (max_audio_seconds)" in stderr
    assert_no_secret(secret, run.stdout, run.stderr)
    files = assert_files_clean(secret, tmp_path / "out")
    assert sorted(p.name for p in files) == ["hostile.abc", "hostile.svg"]


# ---------------------------------------------------------------- generate


def test_generate_answers_every_good_line_and_reports_the_bad_ones_by_line(tiny_model_dir, tmp_path):
    secret = plant_secret(tmp_path)
    lines = [
        json.dumps({"id": "a", "prompt": "Compose a reel in D"}).encode(),
        b'{"id": "b", "prompt": "caf\xe9"}',  # latin-1, not UTF-8
        b"{not json}",
        json.dumps({"id": "d", "prompt": "ok", "score": math.nan}).encode(),  # NaN
        b'{"id": "e", "prompt": "lone \\udcff surrogate"}',
        b'{"id": "f", "prompt": "nul \\u0000 byte"}',
        b"[1, 2]",
        json.dumps({"id": "h", "text": "no prompt field"}).encode(),
        b"",
        json.dumps({"id": "j", "instruction": "Harmonize: ", "input": TUNE}).encode(),
    ]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_bytes(b"\n".join(lines) + b"\n")
    output = tmp_path / "answers.jsonl"
    prefix = f"X:1\\nT:t\\n%%abc-include {secret.path}\\nM:4/4\\nL:1/8\\nK:C\\nCDEF|"
    run = cli("generate", "--model", str(tiny_model_dir), "--input", str(prompts), "--output", str(output),
              "--max_new_tokens", "6", "--do_sample", "false", "--answer_prefix", prefix)  # fmt: skip
    stderr = run.stderr.decode()
    assert run.returncode == 0 and "Traceback" not in stderr, stderr
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row.get("id", row.get("line")) for row in rows] == ["a", 2, 3, 4, 5, 6, 7, 8, "j"]
    bad = {row["line"]: row["error"] for row in rows if "line" in row}
    assert bad == {
        2: "the line is not valid UTF-8 (byte 0xe9 at offset 26); save it as UTF-8 first",
        3: "not valid JSON (Expecting property name enclosed in double quotes)",
        4: "NaN is not a JSON number",
        5: "the line contains a lone surrogate (U+DCFF) at character 28; it is not text",
        6: "the prompt contains a NUL character at character 4 (binary data?)",
        7: "expected a JSON object, got list",
        8: "no string field 'prompt' (nor 'instruction')",
    }
    for number, error in bad.items():
        assert f"{prompts} line {number}: {error}; no answer for it" in stderr
    for row in (rows[0], rows[-1]):
        assert row["response"].startswith("X:1\nT:t\n%%abc-include")
        assert "forbidden-directive" in [issue["code"] for issue in row["tunes"][0]["validation"]["errors"]]
    # the answers hold the prefix as given, path included; never what the file holds
    assert_no_secret(secret, output.read_bytes(), path_allowed=True)
    assert_no_secret(secret, run.stdout, run.stderr)
    assert (
        "6 unusable line(s)" not in run.stdout.decode()
        and "7 unusable line(s) reported" in run.stdout.decode()
    )
    line = one_line_error(
        cli("generate", "--model", str(tiny_model_dir), "--input", str(prompts), "--output", str(output),
            "--top_p", "nan"),
        "generate",
    )  # fmt: skip
    assert line.endswith("--top_p must be a finite number, got nan")
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_bytes(b"{not json}\n")
    line = one_line_error(
        cli("generate", "--model", "unused", "--input", str(only_bad), "--output", "o"), "generate"
    )
    assert line.endswith("no usable prompts in the file; line 1: not valid JSON (Expecting property name enclosed in "
                         "double quotes)")  # fmt: skip


# ---------------------------------------------------------------- chat


def test_chat_refuses_undecodable_input_and_goes_on(tiny_model_dir):
    stdin = b"\xff\xfe not UTF-8\n\nCompose a tune\n\n/quit\n"
    run = subprocess.run(
        [sys.executable, "-m", "chatmusician_hf.cli", "chat", "--model", str(tiny_model_dir), "--max_new_tokens", "4"],
        input=stdin, capture_output=True, timeout=600,
    )  # fmt: skip
    out = run.stdout.decode()
    assert run.returncode == 0 and "Traceback" not in run.stderr.decode(), run.stderr.decode()
    assert "[not sent] the message contains a lone surrogate (U+DCFF) at character 0; it is not text" in out
    assert out.count("ChatMusician: ") == 1, "the next message was answered"
    line = one_line_error(cli("chat", "--model", str(tiny_model_dir), "--temperature", "inf"), "chat")
    assert line.endswith("--temperature must be a finite number, got inf")


def test_chat_session_and_render_refuse_hostile_text(tiny_model_dir, tmp_path):
    import io

    session = ChatSession(
        load_model(ModelArguments(model=str(tiny_model_dir))), GenerationArguments(), ChatArguments(), "tiny"
    )
    out = io.StringIO()
    assert session.answer("nul \x00 here", out) is None
    assert out.getvalue() == "[not sent] the message contains a NUL character at character 4 (binary data?)\n"
    assert session.history == []
    secret = plant_secret(tmp_path)
    answer = "Here it is:\n" + hostile("format", secret)
    ((stem, result),) = render_tunes(answer, tmp_path / "renders", "turn1")
    assert stem == "turn1-tune1" and result.report.errors[0].code == "forbidden-directive"
    assert_files_clean(secret, tmp_path / "renders")
