"""The quickstart end to end (shortened training), its resumability, and its report in a real browser."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHORT = ["--cpt_max_steps", "16", "--sft_max_steps", "6", "--save_steps", "4", "--eval_prompts", "4", "--eval_batch_size", "4",
         "--max_new_tokens", "96"]


def quickstart(out: Path, *extra: str) -> subprocess.Popen:
    # Its own session, so that a kill reaches the accelerate-launched trainer too, as a terminal's would.
    return subprocess.Popen([sys.executable, "-m", "chatmusician_hf.cli", "quickstart", "--output_dir", str(out),
                             *SHORT, *extra], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory):
    """A quickstart killed with SIGKILL once CPT has written a checkpoint, then run again to the end."""
    out = tmp_path_factory.mktemp("quickstart")
    first = quickstart(out)
    deadline = time.time() + 1200
    while not list((out / "cpt").glob("checkpoint-*/trainer_state.json")):
        assert first.poll() is None, first.stdout.read()
        assert time.time() < deadline, "CPT wrote no checkpoint"
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert not (out / "steps" / "cpt.json").exists()
    second = quickstart(out)
    log = second.communicate(timeout=2400)[0]
    assert second.returncode == 0, log[-4000:]
    return out, log


def test_every_step_finished_and_resumed(killed_then_resumed):
    out, log = killed_then_resumed
    for step in ("init-tiny", "data", "cpt", "merge-cpt", "sft", "merge", "eval", "example", "report"):
        assert (out / "steps" / f"{step}.json").is_file(), step
    assert "init-tiny: done earlier" in log and "data: done earlier" in log
    assert "resuming from" in log  # CPT continued from its checkpoint instead of starting over
    cpt = json.loads((out / "steps" / "cpt.json").read_text())
    assert cpt["global_step"] == 16


def test_report_holds_the_evaluation_and_the_example(killed_then_resumed):
    out, _ = killed_then_resumed
    evaluation = json.loads((out / "steps" / "eval.json").read_text())
    quality = evaluation["abc_quality"]
    assert set(quality) == {"real held-out tunes", "plain sampling", "music-aware decoding"}
    assert quality["real held-out tunes"]["parse_rate"] > 0.5  # the held-out reference tunes themselves
    losses = evaluation["held_out_loss"]
    assert losses["cpt-merged"] < losses["tiny-base"] - 0.5
    assert 0.0 <= evaluation["music_theory_bench"]["overall"] <= 1.0
    report = (out / "report.md").read_text()
    assert "ABC quality on held-out text-to-ABC prompts" in report and "cpt/loss_curve.png" in report
    assert (out / "merged" / "README.md").is_file() and (out / "merged" / "config.json").is_file()
    example = json.loads((out / "steps" / "example.json").read_text())
    assert "Using ABC notation" not in example["answer"]


def test_rerun_reuses_everything(killed_then_resumed):
    out, _ = killed_then_resumed
    before = (out / "report.md").read_text()
    again = quickstart(out)
    log = again.communicate(timeout=600)[0]
    assert again.returncode == 0, log[-3000:]
    assert log.count("done earlier") == 9
    assert (out / "report.md").read_text() == before


def test_report_page_shows_loss_curve_score_and_audio_in_a_browser(killed_then_resumed, tmp_path):
    selenium = pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    out, _ = killed_then_resumed
    example = json.loads((out / "steps" / "example.json").read_text())
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--allow-file-access-from-files", f"--user-data-dir={tmp_path / 'chrome'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get((out / "report.html").as_uri())
        images = driver.find_elements(By.TAG_NAME, "img")
        loaded = [img.get_attribute("src") for img in images
                  if driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)]
        assert any(src.endswith("cpt/loss_curve.png") for src in loaded), loaded
        if "svg" in example["files"]:
            assert any(src.endswith(".svg") for src in loaded), loaded
        if "wav" in example["files"]:  # a tune that abc2midi rejects has a score but no audio
            assert driver.find_elements(By.TAG_NAME, "audio")
        artifacts = REPO / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        driver.save_screenshot(str(artifacts / "quickstart-report.png"))
    finally:
        driver.quit()
    assert selenium
