"""A Gradio demo of the MusicTheoryBench metric that runs on gradio 5 and 6.

evaluate's own ``launch_gradio_widget`` is broken on gradio 6, so this builds the form directly: one prediction,
reference and (optional) subject per line; the result is the metric's output as JSON.
"""

from __future__ import annotations

from pathlib import Path

import evaluate
import gradio as gr

METRIC_DIR = Path(__file__).resolve().parent
metric = evaluate.load(str(METRIC_DIR))

EXAMPLE = ("B\nThe answer is (C).\nI am not sure", "B\nC\nA", "knowledge\nreasoning\nreasoning")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def score(predictions: str, references: str, subjects: str) -> dict:
    """Run the metric on line-separated inputs; a bad input comes back as an error message, not a traceback."""
    preds, refs, subs = _lines(predictions), _lines(references), _lines(subjects)
    try:
        return metric.compute(predictions=preds, references=refs, subjects=subs or None)
    except ValueError as err:
        raise gr.Error(str(err)) from err


def build_demo() -> gr.Blocks:
    readme = (METRIC_DIR / "README.md").read_text()
    card = readme.split("---", 2)[-1] if readme.startswith("---") else readme
    with gr.Blocks(title="MusicTheoryBench metric") as demo:
        gr.Markdown("# MusicTheoryBench metric\nOne item per line. Predictions may be letters or free text.")
        with gr.Row():
            predictions = gr.Textbox(label="Predictions", lines=6)
            references = gr.Textbox(label="References (A-D)", lines=6)
            subjects = gr.Textbox(label="Subjects (optional: knowledge / reasoning)", lines=6)
        button = gr.Button("Compute", variant="primary")
        result = gr.JSON(label="Result")
        button.click(score, inputs=[predictions, references, subjects], outputs=result, api_name="score")
        gr.Examples([list(EXAMPLE)], inputs=[predictions, references, subjects])
        with gr.Accordion("Metric card", open=False):
            gr.Markdown(card)
    return demo


if __name__ == "__main__":
    build_demo().launch()
