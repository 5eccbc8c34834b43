"""A prompt that ends in .txt or .j2 is text unless a template file by that name exists."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator


def _render(prompt: str, folder) -> str:
    with DAG("t", schedule=None, start_date=pendulum.datetime(2026, 1, 1), template_searchpath=[str(folder)]):
        op = SeedanceGenerateOperator(task_id="g", prompt=prompt)
    op.resolve_template_files()
    return op.render_template(op.prompt, {"ds": "2026-01-01"})


def test_prompt_ending_in_txt_is_rendered_as_text(tmp_path) -> None:
    assert _render("A cat reading notes.txt", tmp_path) == "A cat reading notes.txt"
    assert _render("{{ ds }} teaser.j2", tmp_path) == "2026-01-01 teaser.j2"


def test_prompt_naming_a_template_file_is_read_from_it(tmp_path) -> None:
    (tmp_path / "prompt.txt").write_text("a sunrise on {{ ds }}")
    assert _render("prompt.txt", tmp_path) == "a sunrise on 2026-01-01"
