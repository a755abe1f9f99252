"""Publishing to a Hub: a real local Hub server, the real huggingface_hub / transformers / evaluate clients.

Clients that must talk to the local hub through ``HF_ENDPOINT`` run in subprocesses, because the endpoint is read
when huggingface_hub and evaluate are imported; in-process calls pass ``endpoint=`` explicitly instead.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chatmusician_hf.metrics import metric_script
from chatmusician_hf.push import PushError, check_metric_scripts, publish_spaces, push_folder

from helpers.adapters import make_lora_adapter
from helpers.local_hub import LocalHub, client_env

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_localtest_" + secrets.token_hex(12)  # unique: any occurrence in a log or file is a leak


@pytest.fixture(scope="module")
def hub():
    with LocalHub(token=TOKEN) as local_hub:
        yield local_hub


@pytest.fixture
def online(monkeypatch):
    """Lift the test session's offline mode for in-process clients; they only ever get ``endpoint=hub.endpoint``."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)


def run_client(code: str, hub: LocalHub, hf_home: Path, token: str | None = TOKEN, timeout: int = 400):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=client_env(hub, hf_home, token),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def files_under(*folders: Path):
    for folder in folders:
        yield from (p for p in folder.rglob("*") if p.is_file())


def test_merge_push_reload_generate_without_leaking_the_token(tiny_model_dir, hub, tmp_path):
    from huggingface_hub import EvalResult, ModelCard

    adapter = make_lora_adapter(tiny_model_dir, tmp_path / "lora")
    evals = [dict(task_type="text-generation", dataset_type="m-a-p/MusicTheoryBench", dataset_name="MusicTheoryBench",
                  metric_type="accuracy", metric_name="knowledge accuracy", metric_value=0.31)]  # fmt: skip
    (adapter / "eval_results.json").write_text(json.dumps(evals))
    merged, hf_home = tmp_path / "merged", tmp_path / "hf_home"
    result = run_client(
        f"""
        import json, torch
        from chatmusician_hf.cli import main
        assert main(["merge", "--base", {str(tiny_model_dir)!r}, "--adapter", {str(adapter)!r},
                     "--output_dir", {str(merged)!r}, "--max_shard_size", "2MB", "--datasets", "music21",
                     "--push_to_hub", "--hub_model_id", "user/tiny-merged"]) == 0
        assert main(["push", "--folder", {str(adapter)!r}, "--repo_id", "user/tiny-lora"]) == 0

        from peft import AutoPeftModelForCausalLM
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained("user/tiny-merged")
        model = AutoModelForCausalLM.from_pretrained("user/tiny-merged").eval()
        messages = [{{"role": "user", "content": "Compose a reel in D major."}}]
        inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        output = model.generate(**inputs, max_new_tokens=12, min_new_tokens=12)
        new_tokens = output[0, inputs["input_ids"].shape[1]:]
        with torch.no_grad():
            hub_adapter = AutoPeftModelForCausalLM.from_pretrained("user/tiny-lora").eval()
            gap = (model(**inputs).logits - hub_adapter(**inputs).logits).abs().max().item()
        print(json.dumps({{"new_tokens": len(new_tokens), "text": tokenizer.decode(new_tokens), "gap": gap}}))
        """,
        hub,
        hf_home,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["new_tokens"] == 12 and report["text"]
    assert report["gap"] < 1e-4  # merged model from the hub == base + adapter from the hub

    # the pushed repo is exactly the merged folder, published in one commit after the repo's creation
    remote = hub.files("user/tiny-merged")
    local = {p.relative_to(merged).as_posix(): p.read_bytes() for p in files_under(merged)}
    assert {k: v for k, v in remote.items() if k != ".gitattributes"} == local
    assert sum(name.endswith(".safetensors") for name in remote) >= 2
    assert hub.commit_count("user/tiny-merged") == 2

    card = ModelCard(remote["README.md"].decode())
    assert card.data.base_model == str(tiny_model_dir)
    assert card.data.base_model_relation == "merge"
    assert card.data.datasets == ["music21"]
    assert card.data.eval_results == [EvalResult(**evals[0])]
    assert "music21" in card.text and "Essen" in card.text  # the corpus licence note

    # the token authenticated every write, yet appears in no log line and no file written by the run
    assert TOKEN not in result.stdout + result.stderr
    assert all(TOKEN not in line for line in hub.request_log)
    leaked = [p for p in files_under(tmp_path) if TOKEN.encode() in p.read_bytes()]
    assert leaked == []


def test_interrupted_upload_leaves_the_remote_repo_unchanged(tiny_model_dir, hub, tmp_path, online):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    push_folder(folder, "user/atomic", endpoint=hub.endpoint)
    before, commits = hub.files("user/atomic"), hub.commit_count("user/atomic")
    assert before["config.json"] == (folder / "config.json").read_bytes()

    (folder / "README.md").write_text("---\nlicense: other\n---\n# v2\n")
    (folder / "config.json").write_text(
        (folder / "config.json").read_text().replace('"use_cache": true', '"use_cache": false')
    )
    (folder / "notes" / "extra.txt").parent.mkdir()
    (folder / "notes" / "extra.txt").write_text("second version")
    hub.fail_next_commit_after(2)  # two of the new files arrive, then the connection's work fails
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError, match="500"):
        push_folder(folder, "user/atomic", endpoint=hub.endpoint)
    assert hub.files("user/atomic") == before
    assert hub.commit_count("user/atomic") == commits

    push_folder(folder, "user/atomic", endpoint=hub.endpoint)  # the retry publishes every file at once
    after = hub.files("user/atomic")
    assert after["notes/extra.txt"] == b"second version" and b'"use_cache": false' in after["config.json"]
    assert hub.commit_count("user/atomic") == commits + 1

    (folder / "notes" / "extra.txt").write_text("on a branch")
    push_folder(
        folder, "user/atomic", endpoint=hub.endpoint, revision="experiment"
    )  # --revision makes the branch
    assert hub.files("user/atomic", revision="experiment")["notes/extra.txt"] == b"on a branch"
    assert hub.files("user/atomic")["notes/extra.txt"] == b"second version"


def test_writes_need_the_token_and_bad_input_fails_before_any_request(hub, tmp_path, online, monkeypatch):
    from huggingface_hub.errors import HfHubHTTPError

    folder = tmp_path / "space"
    folder.mkdir()
    (folder / "app.py").write_text("print('hi')\n")
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_token")
    with pytest.raises(HfHubHTTPError, match="401"):
        push_folder(folder, "user/denied", endpoint=hub.endpoint)
    assert hub.commit_count("user/denied") == 0
    requests = len(hub.request_log)
    with pytest.raises(PushError, match="USER/NAME"):
        push_folder(folder, "no-namespace", endpoint=hub.endpoint)
    with pytest.raises(PushError, match="not a directory"):
        push_folder(tmp_path / "missing", "user/x", endpoint=hub.endpoint)
    assert len(hub.request_log) == requests


def metric_project(tmp_path: Path) -> tuple[Path, str]:
    """The project's MusicTheoryBench metric when it is present, else a minimal metric folder of the same shape."""
    if (PROJECT_ROOT / "evaluate_metrics" / "music_theory_bench" / "music_theory_bench.py").is_file():
        return PROJECT_ROOT, "music_theory_bench"
    metric = tmp_path / "project" / "evaluate_metrics" / "letter_accuracy"
    metric.mkdir(parents=True)
    (metric / "README.md").write_text(
        "---\ntitle: letter accuracy\nsdk: gradio\ntags: [evaluate, metric]\n---\n"
    )
    (metric / "letter_accuracy.py").write_text(
        textwrap.dedent(
            """
            import datasets, evaluate, re

            class LetterAccuracy(evaluate.Metric):
                def _info(self):
                    return evaluate.MetricInfo(description="", citation="", features=datasets.Features(
                        {"predictions": datasets.Value("string"), "references": datasets.Value("string")}))

                def _compute(self, predictions, references):
                    letters = [(re.findall(r"\\b([ABCD])\\b", p) or [None])[-1] for p in predictions]
                    return {"accuracy": sum(a == b for a, b in zip(letters, references)) / len(references)}
            """
        )
    )
    return tmp_path / "project", "letter_accuracy"


def test_publish_spaces_then_evaluate_load_from_the_hub(hub, tmp_path, online):
    from huggingface_hub import HfApi

    project, metric = metric_project(tmp_path)
    repos = publish_spaces("user", project, endpoint=hub.endpoint)
    assert f"user/{metric}" in repos
    if project == PROJECT_ROOT:
        assert "user/chatmusician" in repos  # the demo Space goes out with the metrics
    for repo_id in repos:
        info = HfApi(endpoint=hub.endpoint).space_info(repo_id)
        assert info.sdk == "gradio"
    result = run_client(
        f"""
        import json, evaluate
        metric = evaluate.load("user/{metric}")
        print(json.dumps(metric.compute(predictions=["The answer is (B).", "A"], references=["B", "C"])))
        """,
        hub,
        tmp_path / "hf_home",
        token=None,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["accuracy"] == 0.5
    if project == PROJECT_ROOT:  # the Hub got the scoring rules the package runs, byte for byte
        published = hub.files(f"user/{metric}", repo_type="space")[f"{metric}.py"]
        assert published == metric_script(metric).read_bytes()


def test_every_metric_folder_holds_its_packaged_script_byte_for_byte():
    folders = sorted(p for p in (PROJECT_ROOT / "evaluate_metrics").iterdir() if p.is_dir())
    assert [f.name for f in folders] == ["abc_quality", "music_theory_bench"]
    for folder in folders:
        assert (folder / f"{folder.name}.py").read_bytes() == metric_script(folder.name).read_bytes(), folder


def test_publish_spaces_refuses_a_metric_script_that_is_not_the_packaged_one(hub, tmp_path, online):
    project = tmp_path / "project"
    folder = project / "evaluate_metrics" / "music_theory_bench"
    shutil.copytree(PROJECT_ROOT / "evaluate_metrics" / "music_theory_bench", folder)  # links become copies
    check_metric_scripts([folder])  # an identical copy is the packaged script
    script = folder / "music_theory_bench.py"
    script.write_text(script.read_text() + "\nLETTERS = LETTERS[:3]  # an edit made here, not in the package\n")
    requests = len(hub.request_log)
    with pytest.raises(PushError, match="music_theory_bench.py is not the package's chatmusician_hf/metrics/"):
        publish_spaces("refused", project, endpoint=hub.endpoint)
    assert len(hub.request_log) == requests and hub.commit_count("refused/music_theory_bench", "space") == 0
