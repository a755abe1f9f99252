"""``chatmusician-hf push``: publish a folder to the Hub in one commit.

Models, adapters, the demo Space and the ``evaluate`` metric Spaces are all published the same way: the repo is
created if needed, then every file of the folder goes into a single ``create_commit``. Files are uploaded before the
commit is created and the commit is atomic on the Hub, so an interrupted push leaves the repo as it was, never half
published. (``upload_folder`` may split large folders into several commits, which is why it is not used here.)

The token is the one ``huggingface_hub`` finds by itself: ``HF_TOKEN`` or the cache written by ``hf auth login``.
There is deliberately no ``--token`` option, so it never appears in shell history, process lists or logs, and this
module never prints or writes it.

``--publish_spaces USER`` publishes the project's Hub artefacts: ``spaces/chatmusician`` as ``USER/chatmusician``
and each folder under ``evaluate_metrics/`` as ``USER/<folder>``, after which ``evaluate.load("USER/<metric>")`` works.
A metric's script must be the package's own (``chatmusician_hf/metrics/``) byte for byte, or nothing is published:
the Hub gets exactly the scoring rules the package runs.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from .configs import make_stage_parser
from .errors import PushError

REPO_TYPES = ["model", "space", "dataset"]
# Never published: version-control data, caches and intermediate training checkpoints.
DEFAULT_EXCLUDE = [
    ".git/*",
    "*/.git/*",
    "__pycache__/*",
    "*/__pycache__/*",
    "*.pyc",
    ".DS_Store",
    "checkpoint-*/*",
]
METRICS_FOLDER = "evaluate_metrics"
SPACE_FOLDERS = ("spaces", METRICS_FOLDER)


@dataclass
class PushArguments:
    folder: str = field(
        default=None, metadata={"help": "Folder to publish (a model, adapter, Space or metric folder)."}
    )
    repo_id: str = field(
        default=None, metadata={"help": "Target repo, USER/NAME; created if it does not exist."}
    )
    repo_type: str = field(
        default="model", metadata={"help": "Kind of repo: model, space or dataset.", "choices": REPO_TYPES}
    )
    private: bool = field(
        default=False,
        metadata={"help": "Create the repo as private (an existing repo keeps its visibility)."},
    )
    revision: str = field(
        default=None, metadata={"help": "Branch to commit to (created from main if missing); default main."}
    )
    endpoint: str = field(
        default=None, metadata={"help": "Hub URL (default: HF_ENDPOINT or https://huggingface.co)."}
    )
    commit_message: str = field(
        default=None, metadata={"help": "Commit title (default: 'Upload <folder name>')."}
    )
    prune: bool = field(
        default=False,
        metadata={"help": "In the same commit, delete remote files that are not in the folder."},
    )
    exclude: list[str] = field(
        default_factory=lambda: list(DEFAULT_EXCLUDE),
        metadata={"help": "Glob patterns (relative paths) never uploaded."},
    )
    publish_spaces: str = field(
        default=None,
        metadata={
            "help": "Instead of --folder: publish spaces/* and evaluate_metrics/* as Spaces under this user."
        },
    )
    project_root: str = field(
        default=".", metadata={"help": "Project checkout holding spaces/ and evaluate_metrics/."}
    )


def folder_files(folder: Path, exclude: list[str]) -> list[str]:
    """Relative POSIX paths of the files to publish, sorted."""
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not any(fnmatch.fnmatch(rel, pattern) for pattern in exclude):
            files.append(rel)
    return files


def space_sdk(folder: Path) -> str:
    """The ``sdk:`` of a Space's README header (Spaces must declare one); gradio when absent."""
    readme = folder / "README.md"
    if readme.is_file():
        match = re.search(r"^sdk:\s*(\S+)", readme.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    return "gradio"


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool = False,
    revision: str | None = None,
    endpoint: str | None = None,
    commit_message: str | None = None,
    prune: bool = False,
    exclude: list[str] | None = None,
):
    """Create ``repo_id`` if needed and commit every file of ``folder`` to it in one commit. Returns the CommitInfo."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise PushError(f"--folder {folder}: not a directory.")
    if repo_id.count("/") != 1:
        raise PushError(f"--repo_id {repo_id!r}: expected USER/NAME.")
    if repo_type not in REPO_TYPES:
        raise PushError(f"--repo_type {repo_type!r}: choose from {', '.join(REPO_TYPES)}.")
    files = folder_files(folder, DEFAULT_EXCLUDE if exclude is None else exclude)
    if not files:
        raise PushError(f"--folder {folder}: nothing to upload.")

    api = HfApi(endpoint=endpoint)
    api.create_repo(
        repo_id,
        repo_type=repo_type,
        private=private,
        exist_ok=True,
        space_sdk=space_sdk(folder) if repo_type == "space" else None,
    )
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(folder / rel)) for rel in files]
    if prune:
        remote = api.list_repo_files(repo_id, repo_type=repo_type, revision=revision)
        keep = set(files) | {".gitattributes"}
        operations += [CommitOperationDelete(path_in_repo=path) for path in remote if path not in keep]
    info = api.create_commit(
        repo_id,
        operations,
        commit_message=commit_message or f"Upload {folder.name}",
        repo_type=repo_type,
        revision=revision,
    )
    print(
        f"[push] {len(files)} file(s) from {folder} -> {repo_type} {repo_id} in one commit: {info.commit_url}"
    )
    return info


def space_folders(project_root: str | Path) -> list[Path]:
    """``spaces/*`` and ``evaluate_metrics/*`` folders of the project, in that order."""
    root = Path(project_root)
    return [path for parent in SPACE_FOLDERS for path in sorted((root / parent).glob("*")) if path.is_dir()]


def check_metric_scripts(folders: list[Path]) -> None:
    """Each metric folder's ``<name>.py`` must equal its home in the package, so the Hub runs the package's rules."""
    from .metrics import metric_script

    for folder in folders:
        home, script = metric_script(folder.name), folder / f"{folder.name}.py"
        if folder.parent.name != METRICS_FOLDER or not home.is_file():
            continue
        if not script.is_file() or script.read_bytes() != home.read_bytes():
            raise PushError(
                f"{script} is not the package's chatmusician_hf/metrics/{folder.name}.py, the home of its rules; "
                f"edit that file and link to it (ln -sf ../../chatmusician_hf/metrics/{folder.name}.py {script})."
            )


def publish_spaces(namespace: str, project_root: str | Path = ".", **push_kwargs) -> list[str]:
    """Publish every Space folder of the project as ``namespace/<folder name>``; returns the repo IDs."""
    folders = space_folders(project_root)
    if not folders:
        raise PushError(f"{project_root}: no folders under {' or '.join(SPACE_FOLDERS)}/ to publish.")
    check_metric_scripts(folders)
    repos = []
    for folder in folders:
        repo_id = f"{namespace}/{folder.name}"
        push_folder(folder, repo_id, repo_type="space", **push_kwargs)
        repos.append(repo_id)
    return repos


def main(args: PushArguments):
    common = dict(private=args.private, revision=args.revision, endpoint=args.endpoint, exclude=args.exclude)
    if args.publish_spaces:
        if args.folder or args.repo_id:
            raise PushError(
                "--publish_spaces publishes the project's Space folders; do not combine it with --folder/--repo_id."
            )
        return publish_spaces(args.publish_spaces, args.project_root, **common)
    if not args.folder or not args.repo_id:
        raise PushError("--folder and --repo_id are required (or --publish_spaces USER).")
    return push_folder(
        args.folder,
        args.repo_id,
        repo_type=args.repo_type,
        commit_message=args.commit_message,
        prune=args.prune,
        **common,
    )


def make_parser(subparsers=None):
    return make_stage_parser(
        subparsers,
        "push",
        [PushArguments],
        help="Publish a model, adapter, Space or metric folder to the Hub in one commit (token from HF_TOKEN/login).",
        description=__doc__.split("\n\n")[0],
    )


if __name__ == "__main__":
    from .cli import run_as_main

    run_as_main("push")
