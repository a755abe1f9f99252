"""The quickstart's report page, built from a small results dict (no training) and opened in headless Chromium."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import pytest

from chatmusician_hf.quickstart_report import QUALITY_COLUMNS, TITLE, render_html, write_report

from helpers.browser import LOADED_IMAGES_JS, headless_chromium

PROMPT = "Using ABC notation, write a reel.\nKey D"
SAMPLING = {"do_sample": True, "temperature": 0.2, "top_k": 40}
ANSWER = "X:1\nT:Report test\nM:2/4\nL:1/8\nK:D\n|:DF AF|GB AF:|"
SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="60">'
       '<path d="M10 10h180M10 20h180M10 30h180M10 40h180M10 50h180" stroke="black"/></svg>\n')
AUDIO_SECONDS = 0.5


def quality_row(parse_rate: float) -> dict:
    return {column: parse_rate for column in QUALITY_COLUMNS}


RESULTS = {
    "init-tiny": {"seconds": 20.4},
    "cpt": {"seconds": 300.0, "global_step": 240, "final_train_loss": 1.9, "final_eval_loss": 2.1,
            "hardware": "cpu x2", "train_runtime_s": 290},
    "eval": {
        "music_theory_bench": {"knowledge": 0.25, "reasoning": 0.5, "overall": 0.3},
        "abc_quality": {"real held-out tunes": quality_row(1.0), "plain sampling": quality_row(0.75),
                        "music-aware decoding": quality_row(0.9)},
        "held_out_bits_per_character": {"untrained": 5.2, "after CPT": 1.4},
    },
}


def write_wav(path: Path, seconds: float, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        samples = (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate)))
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))


@pytest.fixture
def report_dir(tmp_path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = tmp_path / "quickstart"
    (out / "cpt").mkdir(parents=True)
    (out / "example").mkdir()
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([3.0, 2.5, 2.1])
    fig.savefig(out / "cpt" / "loss_curve.png")
    plt.close(fig)
    (out / "example" / "example.svg").write_text(SVG)
    write_wav(out / "example" / "example.wav", AUDIO_SECONDS)
    example = {"answer": ANSWER, "files": {"svg": str(out / "example" / "example.svg"),
                                           "wav": str(out / "example" / "example.wav")}}
    write_report(out, {**RESULTS, "example": example}, PROMPT, SAMPLING)
    return out


def test_report_page_has_tables_headings_images_and_audio(report_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with headless_chromium() as driver:
        driver.get((report_dir / "report.html").as_uri())
        assert driver.find_element(By.TAG_NAME, "h1").text == TITLE
        sections = [h.text for h in driver.find_elements(By.TAG_NAME, "h2")]
        tables = [[[cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
                   for row in table.find_elements(By.TAG_NAME, "tr")]
                  for table in driver.find_elements(By.TAG_NAME, "table")]
        loaded = driver.execute_script(LOADED_IMAGES_JS)
        audio = driver.find_element(By.TAG_NAME, "audio")
        audio_src, controls = audio.get_attribute("src"), audio.get_attribute("controls")
        duration = WebDriverWait(driver, 30).until(lambda d: d.execute_script("return arguments[0].duration", audio))
        code = [block.text for block in driver.find_elements(By.CSS_SELECTOR, "pre code")]
    assert sections == ["Steps", "Training", "ABC quality on held-out text-to-ABC prompts",
                        "MusicTheoryBench-schema questions (ppl mode, zero-shot)", "Example: the README prompt"]
    steps, quality, bench = tables
    assert steps == [["step", "seconds"], ["init-tiny", "20"], ["cpt", "300"], ["eval", "0"], ["example", "0"]]
    assert quality[0] == ["source", *QUALITY_COLUMNS]
    assert quality[2] == ["plain sampling"] + ["0.750"] * len(QUALITY_COLUMNS)
    assert bench[1:] == [["knowledge", "0.250"], ["reasoning", "0.500"], ["overall", "0.300"]]
    assert sorted(src.rsplit("/", 2)[-2] + "/" + src.rsplit("/", 1)[-1] for src in loaded) == [
        "cpt/loss_curve.png", "example/example.svg"]
    assert audio_src.endswith("example/example.wav") and controls
    assert duration == pytest.approx(AUDIO_SECONDS, abs=0.01)
    assert code == [PROMPT, ANSWER]


def test_html_in_the_markdown_is_shown_as_text_never_obeyed():
    markdown = "\n".join(["# report", "", "<script>alert(1)</script>", "", "| source | rate |", "|---|---|",
                          "| <img src=x onerror=alert(2)> \\| b | 1 |"])
    page = render_html(markdown)
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<td>&lt;img src=x onerror=alert(2)&gt; | b</td>" in page


def test_report_markdown_fences_an_answer_whatever_backticks_it_holds(tmp_path):
    answer = "Here:\n````\n<script>alert(1)</script>\n```abc\nX:1\nK:C\nC|"
    md, page = write_report(tmp_path, {"example": {"answer": answer, "files": {}}}, PROMPT, SAMPLING)
    assert f"`````abc\n{answer}\n`````" in md.read_text()
    assert "<script>" not in page.read_text()
