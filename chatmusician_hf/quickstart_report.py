"""The quickstart's report: ``report.md`` written from the run's results, ``report.html`` rendered from it.

The page is the Markdown rendered by markdown-it-py (CommonMark with GitHub's tables), so the two always say the same
thing. Raw HTML in the Markdown is shown as text, never obeyed, because the report quotes model output. Markdown has
no syntax for sound, so an image whose file is audio becomes an ``<audio>`` player, as Markdown editors embed it.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

TITLE = "chatmusician-hf quickstart report"
QUALITY_COLUMNS = ["parse_rate", "valid_rate", "median_bars", "mean_bars", "bar_duration_correct_rate",
                   "bar_correct_share", "header_adherence", "header_adherence_K", "header_adherence_M",
                   "header_adherence_L", "pitch_class_entropy", "bar_repetition_rate", "copy_rate"]
AUDIO_SUFFIXES = (".wav", ".mp3", ".ogg", ".flac")
# A wide table scrolls inside its own box, as on GitHub, instead of widening the page.
STYLE = ("body{font-family:sans-serif;max-width:64em;margin:auto;padding:0 1em} img{max-width:100%}"
         "table{border-collapse:collapse;display:block;overflow-x:auto}"
         "th,td{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
         "th:first-child,td:first-child{text-align:left;white-space:nowrap}"
         "pre{white-space:pre-wrap;background:#f4f4f4;padding:.6em}")


def _fmt(value) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return "–" if value is None else str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table; a '|' or a line break inside a cell would end the cell or the row, so neither can."""
    def row(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return [row(header), "|" + "---|" * len(header), *(row(r) for r in rows)]


def _fenced(text: str, info: str = "") -> list[str]:
    """A code block fenced by more backticks than any run in ``text``, so the quoted text cannot close it."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, text, fence]


def report_markdown(out: Path, results: dict, prompt: str, sampling: dict) -> str:
    """The report as Markdown: steps, training, held-out evaluation, the example tune with its score and audio.

    ``prompt`` is the example's prompt and ``sampling`` the generation settings of the evaluation and the example.
    """
    evaluation = results.get("eval", {})
    quality = evaluation.get("abc_quality", {})
    lines = [f"# {TITLE}", "",
             "The whole ChatMusician pipeline on the embedded default (tiny LLaMA, music21's ABC tunes), on CPU.", "",
             "## Steps", "", *_table(["step", "seconds"], [[name, f"{r.get('seconds', 0):.0f}"]
                                                          for name, r in results.items()]),
             "", "## Training", ""]
    for stage in ("cpt", "sft"):
        info = results.get(stage)
        if info:
            lines.append(f"- **{stage}**: {info['global_step']} steps, "
                         f"final train loss {_fmt(info['final_train_loss'])}, "
                         f"held-out loss {_fmt(info['final_eval_loss'])} ({info['hardware']}, {info['train_runtime_s']}s)")
            if (out / stage / "loss_curve.png").is_file():
                lines += ["", f"![{stage} loss curve]({stage}/loss_curve.png)", ""]
    bpc = evaluation.get("held_out_bits_per_character", {})
    if bpc:
        lines += ["", "Held-out bits per character (the corpus's held-out tunes): "
                  + ", ".join(f"{name} {_fmt(value)}" for name, value in bpc.items()) + "."]
    if quality:
        columns = [c for c in QUALITY_COLUMNS if any(c in row for row in quality.values())]
        settings = ", ".join(f"{k} {v}" for k, v in sampling.items() if k != "do_sample")
        measured = evaluation.get("abc_quality_measured_on") or {}
        where = ", ".join(f"{name} {n}" for name, n in measured.get("collections", {}).items())
        lines += ["", "## ABC quality on held-out text-to-ABC prompts", "",
                  *([f"Measured on {measured['prompts']} held-out prompts (collections: {where}), answers of at most "
                     f"{measured['max_new_tokens']} tokens; header adherence compares the "
                     f"{', '.join(measured['fields_compared'])} each prompt asks for. "] if measured else []),
                  f"Sampled with ChatMusician's generation defaults ({settings}); music-aware decoding adds "
                  "`--constrain abc` to the same sampling.", "",
                  *_table(["source", *columns], [[name, *(_fmt(row.get(c)) for c in columns)]
                                                 for name, row in quality.items()])]
    bench = evaluation.get("music_theory_bench")
    if bench:
        lines += ["", "## MusicTheoryBench-schema questions (ppl mode, zero-shot)", "",
                  "By default the sample the package ships: questions the project wrote, not the benchmark.", "",
                  *_table(["subset", "accuracy"], [[k, _fmt(v)] for k, v in bench.items()])]
    example = results.get("example", {})
    if example:
        lines += ["", "## Example: the README prompt", "", *_fenced(prompt), "",
                  *_fenced(example.get("answer", ""), "abc"), ""]
        files = example.get("files", {})
        if "svg" in files:
            lines += [f"![score](example/{Path(files['svg']).name})", ""]
        if "wav" in files:
            lines += [f"![audio of the example tune](example/{Path(files['wav']).name})", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _image_or_audio(renderer, tokens, idx, options, env) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    if not src.lower().endswith(AUDIO_SUFFIXES):
        return renderer.image(tokens, idx, options, env)
    label = renderer.renderInlineAsText(token.children or [], options, env)
    return f'<audio controls src="{html.escape(src)}" title="{html.escape(label)}"></audio>'


def render_html(markdown: str, title: str = TITLE) -> str:
    """A standalone page of ``markdown``: tables, headings, images and audio players; raw HTML shown as text."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    parser.add_render_rule("image", _image_or_audio)
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n{parser.render(markdown)}</body></html>\n")


def write_report(out: Path, results: dict, prompt: str, sampling: dict) -> tuple[Path, Path]:
    """``out/report.md`` and ``out/report.html``; image and audio paths are relative to ``out``."""
    markdown = report_markdown(out, results, prompt, sampling)
    md, page = out / "report.md", out / "report.html"
    md.write_text(markdown)
    page.write_text(render_html(markdown))
    return md, page
