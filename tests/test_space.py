"""The Space, really started: ``python spaces/chatmusician/app.py`` on 127.0.0.1, driven by gradio_client and Chromium.

One server per module (starting it loads the model). The last test stops it and checks that nothing it wrote is
left behind, so the tests run in file order.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostile_corpus import (
    ALL_FIXTURES,
    DIRECTIVE_FIXTURES,
    assert_files_clean,
    assert_inert_svg,
    assert_no_secret,
    hostile,
    plant_secret,
)

gradio_client = pytest.importorskip("gradio_client")

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "spaces" / "chatmusician" / "app.py"
ARTIFACTS = REPO / "test-artifacts"
ANSWER_CAP = 24  # CHATMUSICIAN_MAX_NEW_TOKENS given to the server
AUDIO_CAP = 120  # CHATMUSICIAN_MAX_AUDIO_SECONDS given to the server

TWO_VOICES = """X:1
T:Two voices
M:4/4
L:1/8
K:G
V:1
GABc d2B2|c2A2 B4|
V:2 clef=bass
G,2D,2 G,2B,,2|A,2D,2 G,4|"""

BROKEN = """X:1
T:Broken
M:4/4
L:1/8
K:C
CDEF GABc d|[CEG|z8|"""

# A staff in abcm2ps' SVG: one path drawing five horizontal lines.
STAFF_PATH = re.compile(
    r'<path d="m[\d.]+ [\d.]+\s*h[\d.]+(?:\s*M[\d.]+ [\d.]+\s*h[\d.]+){4}\s*" class="stroke"/>'
)


@dataclass
class Space:
    url: str
    process: subprocess.Popen
    root: Path  # everything the test gave the server
    tmp: Path  # the server's TMPDIR
    cwd: Path
    log: Path
    model_dir: Path

    def temp_root(self) -> Path:
        (found,) = self.tmp.glob("chatmusician-space-*")
        return found

    def client(self):
        return gradio_client.Client(self.url, verbose=False, download_files=str(self.root / "downloads"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _snapshot(root: Path, skip: Path) -> set[str]:
    """Every path under ``root`` except inside ``skip`` (the app's own temp folder) and the client's downloads."""
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if skip not in p.parents and p != skip and "downloads" not in p.relative_to(root).parts
    }


@pytest.fixture(scope="module")
def space(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("space")
    tmp, cwd, log = root / "tmp", root / "cwd", root / "app.log"
    tmp.mkdir()
    cwd.mkdir()
    port = _free_port()
    env = dict(
        os.environ,
        CHATMUSICIAN_MODEL=str(tiny_model_dir),
        CHATMUSICIAN_MAX_NEW_TOKENS=str(ANSWER_CAP),
        CHATMUSICIAN_CONCURRENCY="4",
        CHATMUSICIAN_MAX_AUDIO_SECONDS=str(AUDIO_CAP),
        TMPDIR=str(tmp),
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
    )
    env.pop("GRADIO_TEMP_DIR", None)
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, str(APP)], cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 240
    while True:
        if process.poll() is not None:
            pytest.fail(f"the app exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "config", timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the app did not answer on {url} in time:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    yield Space(url, process, root, tmp, cwd, log, Path(tiny_model_dir))
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def assistant_text(history) -> str:
    content = history[-1]["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def chat(
    client,
    message: str,
    max_new_tokens: int = 16,
    constrain: bool = False,
    answer_prefix: str = "",
    abc_header: str = "",
):
    return client.submit(
        message, [], 0.2, 40, 0.9, 1.1, max_new_tokens, constrain, answer_prefix, abc_header, api_name="/chat"
    )


def svgs_in(score_html: str) -> list[str]:
    return [
        base64.b64decode(data).decode()
        for data in re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", score_html)
    ]


# ---------------------------------------------------------------- chat


def test_chat_streams_an_answer(space):
    job = chat(space.client(), "Compose a reel in D")
    lengths = [len(assistant_text(update[0])) for update in job]
    history, message_box, *_, validation = job.result()
    assert len(lengths) >= 3, "the answer should arrive in several streamed updates"
    assert lengths == sorted(lengths) and lengths[-1] > 0
    assert history[0]["role"] == "user" and "Compose a reel in D" in json.dumps(history[0])
    assert assistant_text(history) and message_box == ""
    assert validation == "No ABC tune in this answer." or validation.startswith("Tune")


def test_an_answer_holding_a_tune_shows_its_score_audio_and_files(space):
    """The untrained model writes noise; starting its answer with a tune header and a bar (the "Start the answer
    with" box) and music-aware decoding make the answer hold a tune, so the chat's render path always runs."""
    from chatmusician_hf.music import extract_tunes, validate_abc

    header = "X:1\nT:Answer\nM:4/4\nL:1/8\nK:G\nGABc dedB|"  # one bar of notes: there is always music to draw
    job = chat(
        space.client(), "Compose a tune in G", max_new_tokens=ANSWER_CAP, constrain=True, answer_prefix=header
    )
    history, _, score, wav, files, validation = job.result()
    answer = assistant_text(history)
    assert answer.startswith(header) and len(answer) > len(header)
    (tune,) = extract_tunes(answer)
    (svg,) = svgs_in(score)
    assert ">Answer</text>" in svg and STAFF_PATH.findall(svg)
    assert Path(wav).read_bytes()[8:12] == b"WAVE"
    by_suffix = {Path(f).suffix: Path(f) for f in files}
    assert set(by_suffix) == {".abc", ".mid", ".wav", ".svg"}
    # The chatbot shows tabs as spaces, so the answer read back from it matches the rendered tune up to whitespace.
    assert by_suffix[".abc"].read_text().split() == tune.abc.split()
    assert validation.startswith("Tune: " + validate_abc(tune.abc).summary().splitlines()[0])


def test_music_aware_decoding_is_on_by_default_and_a_bad_header_is_one_line(space):
    client = space.client()
    parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/chat"]["parameters"]
    defaults = {p["parameter_name"]: p.get("parameter_default") for p in parameters}
    assert defaults["constrain"] is True
    with pytest.raises(gradio_client.exceptions.AppError, match="K:Gfoo cannot be used"):
        chat(client, "Compose a jig", constrain=True, abc_header="M:6/8 K:Gfoo").result()


# ---------------------------------------------------------------- render endpoint


def test_render_returns_score_midi_and_audio(space):
    score, wav, files, report = space.client().predict(TWO_VOICES, api_name="/render")
    (svg,) = svgs_in(score)
    assert len(STAFF_PATH.findall(svg)) == 2, "both voices get their own staff"
    assert Path(wav).read_bytes()[8:12] == b"WAVE" and Path(wav).stat().st_size > 10_000
    by_suffix = {Path(f).suffix: Path(f) for f in files}
    assert set(by_suffix) == {".abc", ".mid", ".wav", ".svg"}
    assert by_suffix[".mid"].read_bytes()[:4] == b"MThd"
    assert by_suffix[".abc"].read_text().strip() == TWO_VOICES
    assert by_suffix[".svg"].read_text() == svg
    assert report.startswith("Tune: valid")


def test_render_shows_the_validators_messages_for_a_broken_tune(space):
    from chatmusician_hf.music import validate_abc

    expected = validate_abc(BROKEN)
    assert not expected.is_valid
    score, wav, files, report = space.client().predict(BROKEN, api_name="/render")
    assert "INVALID" in report
    for issue in expected.errors:
        assert issue.message in report


# ---------------------------------------------------------------- hostile input


def test_hostile_input_is_refused_or_rendered_safely(space):
    client = space.client()
    canaries = space.root / "canaries"
    before = _snapshot(space.root, space.temp_root())
    shell = (
        f"X:1\nT:$(touch {canaries}-1) `touch {canaries}-2`; touch {canaries}-3 | rm -rf ~ && echo >{canaries}-4\n"
        f"C:{canaries}-5 $HOME %x %s\nM:4/4\nL:1/8\nK:G\nGABc dedB|\n"
    )
    path_title = (
        "X:1\nT:../../../../../../tmp/escaped\nT:/etc/passwd\nF:../../x.mid\nM:4/4\nL:1/8\nK:G\nGABc dedB|\n"
    )
    for abc in (shell, path_title):
        score, wav, files, report = client.predict(abc, api_name="/render")
        assert report.startswith("Tune: valid"), report
        assert sorted(Path(f).name for f in files) == ["tune1.abc", "tune1.mid", "tune1.svg", "tune1.wav"]

    huge = "X:1\nK:C\n" + "C" * 1_048_576
    assert client.predict(huge, api_name="/render") == (
        "",
        None,
        [],
        "The ABC text is 1,048,584 characters long; the limit is 20,000.",
    )
    with pytest.raises(gradio_client.exceptions.AppError, match="limit is 12,000"):
        chat(client, "Tell me about this tune:\n" + huge).result()

    binary = "X:1\nK:C\n" + bytes(range(256)).decode("latin-1") * 4
    *_, report = client.predict(binary, api_name="/render")
    assert "binary data" in report
    with pytest.raises(gradio_client.exceptions.AppError, match="binary data"):
        chat(client, binary).result()
    # Binary-looking text without NUL bytes is just bad ABC: the validator answers, nothing crashes.
    *_, report = client.predict("X:1\nK:C\n" + bytes(range(1, 256)).decode("latin-1"), api_name="/render")
    assert report.startswith("Tune: ")

    assert space.process.poll() is None, "the server survived"
    assert not list(space.root.glob("canaries*")), "nothing was executed"
    assert not Path("/tmp/escaped").exists()
    assert _snapshot(space.root, space.temp_root()) == before, "nothing written outside the app's temp folder"
    assert not list(space.cwd.iterdir())


def call_raw(space, api_name: str, body: str) -> tuple[str, object]:
    """POST a JSON body exactly as written (NaN, \\udcff escapes: what gradio_client's encoder refuses to send) to
    the Space's API and return the final (event, data) of its answer stream."""
    api = f"{space.url}gradio_api/call/{api_name}"
    request = urllib.request.Request(api, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{api}/{event_id}", timeout=300) as response:
        stream = response.read().decode()
    events = re.findall(r"^event: (\w+)\ndata: (.*)$", stream, re.MULTILINE)
    event, data = events[-1]
    return event, json.loads(data)


@pytest.fixture(scope="module")
def secret(space):
    """A file beside the server that hostile tunes try to read."""
    folder = space.root / "secrets"
    folder.mkdir(exist_ok=True)
    return plant_secret(folder)


def test_hostile_corpus_through_the_render_endpoint_leaks_nothing(space, secret):
    client = space.client()
    downloads = space.root / "downloads"
    for name in ALL_FIXTURES:
        score, wav, files, report = client.predict(hostile(name, secret), api_name="/render")
        assert_no_secret(secret, score, report)
        for svg in svgs_in(score):
            assert_inert_svg(svg.encode())
        if name in DIRECTIVE_FIXTURES:
            assert "[directives/forbidden-directive]" in report and "removed before the tools ran" in report
        if name in ("slow_tempo", "long_repeats"):
            assert wav is None and f"the limit is {AUDIO_CAP} s (max_audio_seconds)" in report
            assert sorted(Path(f).suffix for f in files) == [".abc", ".svg"]
    assert_files_clean(secret, downloads)
    assert space.process.poll() is None


def test_the_chats_answer_prefix_cannot_read_a_file(space, secret):
    prefix = f"X:1\nT:Prefix\n%%abc-include {secret.path}\nM:4/4\nL:1/8\nK:G\nGABc dedB|"
    history, _, score, wav, files, validation = chat(
        space.client(), "Compose a tune", max_new_tokens=ANSWER_CAP, constrain=True, answer_prefix=prefix
    ).result()
    assert "line 3: %%abc-include reads a file on the machine running the tools" in validation
    # the answer holds the prefix as typed (its path too); what the file holds appears nowhere
    assert_no_secret(secret, json.dumps(history), path_allowed=True)
    assert_no_secret(secret, score, validation)
    assert [Path(f).suffix for f in files] and wav
    for svg in svgs_in(score):
        assert_inert_svg(svg.encode())


def test_nan_settings_and_lone_surrogates_get_a_clear_message(space):
    good = ["Compose a tune", [], 0.2, 40, 0.9, 1.1, 8, False, "", ""]
    for index, label in ((2, "Temperature"), (4, "Top-p"), (5, "Repetition penalty"), (6, "Max new tokens")):
        body = json.dumps({"data": good[:index] + ["NAN_HERE"] + good[index + 1 :]}).replace(
            '"NAN_HERE"', "NaN"
        )
        event, data = call_raw(space, "chat", body)
        assert (event, data["error"]) == ("error", f"{label} must be a finite number, got nan.")
    event, data = call_raw(space, "chat", json.dumps({"data": ["hi \udcff", *good[1:]]}))
    assert data["error"] == "The message contains a lone surrogate (U+DCFF) at character 3; it is not text."
    turn = [{"type": "text", "text": "a\udcff"}]
    history = [{"role": "user", "content": turn}, {"role": "assistant", "content": turn}]
    event, data = call_raw(space, "chat", json.dumps({"data": [good[0], history, *good[2:]]}))
    assert (
        data["error"]
        == "A message in the conversation contains a lone surrogate (U+DCFF) at character 1; it is not text."
    )
    event, data = call_raw(space, "render", json.dumps({"data": ["X:1\nK:C\nC\udcffD|"]}))
    assert (event, data) == (
        "complete",
        ["", None, [], "The ABC text contains a lone surrogate (U+DCFF) at character 9; it is not text."],
    )
    assert space.process.poll() is None


def test_the_server_log_holds_no_secret_and_no_unexpected_traceback(space, secret):
    log = space.log.read_text(errors="replace")
    assert_no_secret(secret, log)
    # gradio prints a traceback for every refusal it sends (gr.Error); any other would be a crash
    for trace in log.split("Traceback (most recent call last):")[1:]:
        last = next(line for line in trace.splitlines() if line and not line.startswith((" ", "^")))
        assert last.startswith("gradio.exceptions.Error: "), trace[-1500:]


# ---------------------------------------------------------------- load


def test_twenty_concurrent_clients_each_get_a_complete_answer(space):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(space.model_dir)

    def one_chat(i):
        return chat(space.client(), f"Compose tune number {i}", max_new_tokens=ANSWER_CAP).result()

    def one_render(i):
        return space.client().predict(TWO_VOICES.replace("Two voices", f"Copy {i}"), api_name="/render")

    with ThreadPoolExecutor(max_workers=25) as pool:
        chats = [pool.submit(one_chat, i) for i in range(20)]
        renders = [pool.submit(one_render, i) for i in range(5)]
        chat_results = [f.result(timeout=300) for f in chats]
        render_results = [f.result(timeout=300) for f in renders]
    for i, (history, *_rest) in enumerate(chat_results):
        assert f"Compose tune number {i}" in json.dumps(history[0])
        answer = assistant_text(history)
        assert answer
        assert len(tokenizer(answer, add_special_tokens=False)["input_ids"]) <= 2 * ANSWER_CAP
    for i, (_score, wav, files, report) in enumerate(render_results):
        assert report.startswith("Tune: valid") and wav and len(files) == 4
        assert f"Copy {i}" in Path([f for f in files if f.endswith(".abc")][0]).read_text()
    # every request's render folder is gone once its answer was sent
    assert not list(space.temp_root().glob("request-*"))
    # a longer answer than the server allows is refused with a message
    with pytest.raises(gradio_client.exceptions.AppError, match=f"greater than maximum value {ANSWER_CAP}"):
        chat(space.client(), "Compose a long tune", max_new_tokens=1_000_000).result()


# ---------------------------------------------------------------- a real browser


def _chromium():
    webdriver = pytest.importorskip("selenium.webdriver")
    for program in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not Path(program).exists():
            pytest.skip(f"{program} is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1800",
    ):  # fmt: skip
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options), profile


STAVES_IN_SCORE_JS = """
const done = arguments[arguments.length - 1];
const img = document.querySelector('#score img');
fetch(img.src).then(r => r.text()).then(text => {
  const svg = new DOMParser().parseFromString(text, 'image/svg+xml');
  const staves = [...svg.querySelectorAll('path')].filter(p => ((p.getAttribute('d') || '').match(/h/g) || []).length === 5
      && /^m[\\d. ]+h/.test((p.getAttribute('d') || '').trim()));
  done({staves: staves.length, width: img.naturalWidth, root: svg.documentElement.nodeName});
});
"""


def test_browser_pastes_a_two_voice_tune_and_sees_score_and_audio(space):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, profile = _chromium()
    try:
        start = time.perf_counter()
        driver.get(space.url)
        box = WebDriverWait(driver, 60).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#abc-input textarea")
        )
        page_loaded = time.perf_counter() - start
        box.click()
        # Input.insertText delivers the text in one input event, as a paste does.
        driver.execute_cdp_cmd("Input.insertText", {"text": TWO_VOICES})
        assert box.get_attribute("value") == TWO_VOICES
        clicked = time.perf_counter()
        driver.find_element(By.CSS_SELECTOR, "#render-button").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#score img"))
        audio_src = WebDriverWait(driver, 60).until(
            lambda d: d.execute_script("const a = document.querySelector('#audio audio'); return a && a.src")
        )
        shown = time.perf_counter() - clicked
        duration = WebDriverWait(driver, 30).until(
            lambda d: d.execute_script(
                "const a = document.querySelector('#audio audio'); return a.duration > 0 && a.duration"
            )
        )
        score = driver.execute_async_script(STAVES_IN_SCORE_JS)
        validation = driver.find_element(By.CSS_SELECTOR, "#validation textarea").get_attribute("value")
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "space-render-two-voices.png"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    assert score == {"staves": 2, "width": score["width"], "root": "svg"} and score["width"] > 0
    assert audio_src.endswith("tune1.wav")
    assert 3 < duration < 30  # two bars of 4/4 plus the synthesizer's release
    assert validation.startswith("Tune: valid")
    print(f"\n[browser] page load {page_loaded:.2f}s; score + audio shown {shown:.2f}s after clicking Render")


# ---------------------------------------------------------------- shutdown (keep last)


def test_stopping_the_server_leaves_no_temporary_files(space):
    temp_root = space.temp_root()
    assert (temp_root / "gradio-cache").exists(), "gradio's cached copies live in the app's temp folder"
    space.process.send_signal(signal.SIGTERM)
    assert space.process.wait(60) is not None
    assert not temp_root.exists()
    assert not list(space.tmp.glob("chatmusician-space-*"))
