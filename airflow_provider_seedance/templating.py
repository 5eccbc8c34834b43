"""Template files without surprises: a prompt that merely *ends* in ``.txt`` is a prompt.

Airflow treats any templated string ending in one of ``template_ext`` as the name of a
template file, so the prompt "a cat reading notes.txt" fails the task with
``TemplateNotFound``. Here such a value is read as a file only when a file by that name can
be loaded; otherwise it is rendered as the text it is.
"""

from __future__ import annotations

from typing import Any

import jinja2


def _is_template_file(env: jinja2.Environment, value: str) -> bool:
    if "\n" in value or env.loader is None:
        return False
    try:
        env.loader.get_source(env, value)
    except (jinja2.TemplateNotFound, OSError, ValueError):
        return False
    return True


class LiteralSafeTemplater:
    """Mixin for operators (before ``BaseOperator`` in the bases): see the module docstring."""

    template_ext: Any
    template_fields: Any

    def resolve_template_files(self) -> None:
        """Load the template files named by template fields; leave other values as they are."""
        ext = tuple(self.template_ext or ())
        if ext:
            env = self.get_template_env()  # type: ignore[attr-defined]
            for name in self.template_fields:
                value = getattr(self, name, None)
                if isinstance(value, str) and value.endswith(ext) and _is_template_file(env, value):
                    setattr(self, name, env.loader.get_source(env, value)[0])
                elif isinstance(value, list):
                    for i, item in enumerate(value):
                        if isinstance(item, str) and item.endswith(ext) and _is_template_file(env, item):
                            value[i] = env.loader.get_source(env, item)[0]
        self.prepare_template()  # type: ignore[attr-defined]

    def render_template(
        self,
        content: Any,
        context: Any,
        jinja_env: jinja2.Environment | None = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        ext = tuple(self.template_ext or ())
        if isinstance(content, str) and ext and content.endswith(ext):
            env = jinja_env or self.get_template_env()  # type: ignore[attr-defined]
            if not _is_template_file(env, content):
                return self._render(env.from_string(content), context)  # type: ignore[attr-defined]
        return super().render_template(content, context, jinja_env, seen_oids)  # type: ignore[misc]
