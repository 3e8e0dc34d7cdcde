"""MkDocs hook: links from a page to files of the source tree outside ``docs/``.

The pages are also read on GitHub, where ``[the SLURM script](../examples/slurm/train.sbatch)`` works.
The site has no copy of such files, so MkDocs would report the link as broken. This hook replaces a
link whose target exists in the repository outside ``docs/`` with its text and the file's path in
code (``the SLURM script (`examples/slurm/train.sbatch`)``). A target that does not exist is left
alone, so ``mkdocs build --strict`` still fails on it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# [text](target) with a relative target that climbs out of the page's folder; not images (![...]).
LINK = re.compile(r"(?<!!)\[([^\]\n]+)\]\((\.\./[^)\s#]+)(#[^)\s]*)?\)")


def source_tree_links(markdown: str, page_path: Path, docs_dir: Path) -> str:
    """``markdown`` with links to existing files outside ``docs_dir`` turned into text and a path."""
    docs_dir = docs_dir.resolve()
    repo = docs_dir.parent

    def replace(match: re.Match[str]) -> str:
        text, target = match.group(1), match.group(2)
        resolved = (page_path.parent / target).resolve()
        if resolved.is_relative_to(docs_dir) or not resolved.is_relative_to(repo) or not resolved.exists():
            return match.group(0)
        return f"{text} (`{resolved.relative_to(repo).as_posix()}`)"

    return LINK.sub(replace, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.abs_src_path is None:  # a generated page (scripts/gen_reference.py)
        return markdown
    return source_tree_links(markdown, Path(page.file.abs_src_path), Path(config["docs_dir"]))
