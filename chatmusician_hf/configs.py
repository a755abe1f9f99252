"""Recipe parsing: YAML recipes give defaults, command-line flags override, and mistakes fail loudly.

Every stage describes its options as dataclasses whose fields carry ``metadata={"help": ...}``; the dataclass is
the documentation and ``--help`` prints it. :class:`RecipeParser` is TRL's ``TrlParser`` (``--config recipe.yaml``,
an ``env:`` block exported to the environment) with one change: an unknown key in a recipe or on the command line
fails before anything is loaded, naming the file, the key and the closest valid key.

``--config`` takes a file path or, as TRL takes the names of the accelerate configs it ships, the name of a recipe
shipped with the package: ``tiny/cpt`` is ``recipes/tiny/cpt.yaml`` of the repository, which the wheel carries as
``chatmusician_hf/recipes`` (a link to it in a checkout), so recipes work wherever the package is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import sys
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path

import yaml
from trl import TrlParser

from .errors import RecipeError


def closest_key(key: str, valid: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key_message(where: str, key: str, valid: Iterable[str]) -> str:
    suggestion = closest_key(key, valid)
    hint = f" Did you mean '{suggestion}'?" if suggestion else ""
    return f"{where}: unknown key '{key}'.{hint}"


def packaged_recipes() -> list[str]:
    """Names of the recipes shipped with the package, such as ``tiny/cpt``."""
    root = resources.files("chatmusician_hf") / "recipes"
    return sorted(
        f"{folder.name}/{file.name.removesuffix('.yaml')}"
        for folder in root.iterdir()
        if folder.is_dir()
        for file in folder.iterdir()
        if file.name.endswith(".yaml")
    )


@contextlib.contextmanager
def recipe_file(reference: str | os.PathLike) -> Iterator[Path]:
    """The recipe ``reference`` names as a file: a path when one exists there, else a packaged recipe."""
    path = Path(reference)
    if path.is_file():
        yield path
        return
    name = str(reference).removesuffix(".yaml")
    packaged = resources.files("chatmusician_hf") / "recipes" / f"{name}.yaml"
    if not packaged.is_file():
        suggestion = closest_key(name, packaged_recipes())
        hint = f" Did you mean the packaged recipe '{suggestion}'?" if suggestion else ""
        raise RecipeError(f"Recipe file not found: {reference}.{hint}")
    with resources.as_file(packaged) as file:
        yield file


def load_recipe(reference: str | os.PathLike) -> dict:
    """Read a recipe (a path or a packaged name) into a mapping, with errors that name the file."""
    with recipe_file(reference) as path:
        text = path.read_text()
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RecipeError(f"{reference}: not valid YAML: {err}") from err
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise RecipeError(f"{reference}: a recipe must be a YAML mapping of option names to values.")
    return config


class RecipeParser(TrlParser):
    """``TrlParser`` that rejects unknown recipe keys and command-line flags with a suggestion."""

    def _option_names(self) -> set[str]:
        return {action.dest for action in self._actions if action.dest != argparse.SUPPRESS}

    def parse_args_and_config(
        self,
        args: Iterable[str] | None = None,
        return_remaining_strings: bool = False,
        fail_with_unknown_args: bool = True,
        separate_remaining_strings: bool = False,
    ):
        args = list(args) if args is not None else sys.argv[1:]
        valid = self._option_names()
        reference = None
        if "--config" in args:
            position = args.index("--config")
            if position + 1 >= len(args):
                raise RecipeError("--config needs a recipe: a file path or a packaged name such as tiny/cpt.")
            reference = args[position + 1]
            config = load_recipe(reference)
            for key in config:
                if key != "env" and key not in valid:
                    raise RecipeError(unknown_key_message(reference, key, valid))
            env = config.get("env", {})
            if not isinstance(env, dict):
                raise RecipeError(f"{reference}: 'env' must be a mapping of variable names to values.")
        if not return_remaining_strings:
            flags = {flag for action in self._actions for flag in action.option_strings}
            for token in args:
                flag = token.split("=", 1)[0]
                if flag.startswith("--") and flag != "--config" and flag not in flags:
                    raise RecipeError(unknown_key_message("command line", flag, flags))
        with contextlib.ExitStack() as stack:
            if reference is not None:  # TrlParser reads the recipe from a file path
                args[position + 1] = str(stack.enter_context(recipe_file(reference)))
            try:
                return super().parse_args_and_config(
                    args=args,
                    return_remaining_strings=return_remaining_strings,
                    fail_with_unknown_args=fail_with_unknown_args,
                    separate_remaining_strings=separate_remaining_strings,
                )
            except RecipeError:
                raise
            except ValueError as err:
                # The option dataclasses' own checks (transformers', TRL's) refuse combinations this way.
                raise RecipeError(f"{reference or 'command line'}: {err}") from None


def make_stage_parser(subparsers, name: str, dataclass_types: list, help: str, description: str | None = None):
    """The parser of one stage: a subcommand of ``chatmusician-hf`` when ``subparsers`` is given, else standalone.

    The same dataclasses serve ``chatmusician-hf <stage>``, ``python -m chatmusician_hf.<stage>`` and
    ``accelerate launch -m chatmusician_hf.<stage>``.
    """
    kwargs = dict(description=description or help, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    if subparsers is not None:
        return subparsers.add_parser(name, dataclass_types=dataclass_types, help=help, **kwargs)
    return RecipeParser(dataclass_types=dataclass_types, prog=f"chatmusician-hf {name}", **kwargs)
