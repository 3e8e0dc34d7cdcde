"""The documentation cannot drift from the code.

* Every ``pycon`` block of a tutorial page (``docs/tutorial/*.md``) runs as a doctest, the blocks of
  one page in order in one namespace, and must print what the page shows.
* Tutorial pages hold no ``python`` blocks that would go unexecuted.
* Every registered component has a docstring (the reference pages show its first line).
* The generated reference (``scripts/gen_reference.py``) lists every component and every config option.
* Every page under ``docs/`` is in the site's navigation (``mkdocs.yml``).
* Every relative link of the README and the pages resolves in the source tree, as GitHub shows them.
* The README's Python block runs as written (on tiny data).
"""

from __future__ import annotations

import doctest
import importlib.util
import inspect
import re
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import torch
import yaml
from tests.conftest import TINY

import cnnpl
import cnnpl.callbacks  # registers the built-in callbacks

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
TUTORIAL_PAGES = sorted((DOCS / "tutorial").glob("*.md"))
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """``(language, body, line number of the body)`` of every fenced block of a Markdown text."""
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start(2)) + 1) for m in FENCE.finditer(text)]


def page_doctest(path: Path) -> doctest.DocTest:
    """The page's ``pycon`` blocks as one doctest; line numbers in failures are the page's."""
    text = path.read_text()
    examples: list[doctest.Example] = []
    parser = doctest.DocTestParser()
    for language, body, line in fenced_blocks(text):
        if language == "pycon":
            for example in parser.get_examples(body, name=path.name):
                example.lineno += line - 1  # doctest reports lineno + 1: the page's line number
                examples.append(example)
    return doctest.DocTest(examples, {"__name__": f"docs.tutorial.{path.stem}"}, path.name, str(path), 0, None)


def test_fenced_block_parser_sees_languages_and_bodies() -> None:
    text = "x\n```pycon\n>>> 1 + 1\n2\n```\n\n```bash\nls\n```\n"
    assert fenced_blocks(text) == [("pycon", ">>> 1 + 1\n2\n", 3), ("bash", "ls\n", 8)]


def test_a_wrong_output_on_a_page_fails(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```pycon\n>>> import cnnpl\n>>> cnnpl.list_components('norm')\n['batch']\n```\n")
    runner = doctest.DocTestRunner(optionflags=FLAGS, verbose=False)
    result = runner.run(page_doctest(page), out=lambda _s: None)
    assert (result.attempted, result.failed) == (2, 1)


def test_there_are_tutorial_pages_with_examples() -> None:
    assert len(TUTORIAL_PAGES) >= 10
    assert sum(len(page_doctest(p).examples) for p in TUTORIAL_PAGES) >= 50


@pytest.mark.parametrize("page", TUTORIAL_PAGES, ids=lambda p: p.stem)
def test_tutorial_page_examples_run(page: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)  # anything a page writes lands here, never in the repo
    test = page_doctest(page)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS, verbose=False)
    result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)


@pytest.mark.parametrize("page", TUTORIAL_PAGES, ids=lambda p: p.stem)
def test_tutorial_pages_have_no_unexecuted_python(page: Path) -> None:
    unexecuted = [line for language, _body, line in fenced_blocks(page.read_text()) if language in ("python", "py")]
    assert not unexecuted, f"{page.name}: python blocks at lines {unexecuted}; write them as pycon (>>>) to run them"


@pytest.mark.parametrize("family", cnnpl.FAMILIES)
def test_every_registered_component_has_a_docstring(family: str) -> None:
    undocumented = [
        name
        for name in cnnpl.list_components(family)
        if not (inspect.getdoc(cnnpl.get_registry(family).entry(name).obj) or "").strip()
    ]
    assert not undocumented, f"{family} components without a docstring: {undocumented}"


def _gen_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", REPO / "scripts" / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_python_block_runs(restore_registries, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The block as the README shows it; only ``cnnpl.compose`` also gets the tests' tiny data and one epoch."""
    blocks = [body for language, body, _ in fenced_blocks((REPO / "README.md").read_text()) if language == "python"]
    assert len(blocks) == 1, "README.md: one python block expected; test the others too"
    monkeypatch.chdir(tmp_path)  # the block trains into outputs/try
    real_compose = cnnpl.compose

    def tiny_compose(overrides: list[str] | None = None, output_dir: str | None = None):
        keys = {o.split("=", 1)[0] for o in overrides or []}
        tiny = [o for o in [*TINY, "callbacks=minimal"] if o.split("=", 1)[0] not in keys]
        return real_compose([*(overrides or []), *tiny], output_dir=output_dir)

    monkeypatch.setattr(cnnpl, "compose", tiny_compose)
    namespace: dict = {"__name__": "readme"}
    exec(compile(blocks[0], str(REPO / "README.md"), "exec"), namespace)

    assert cnnpl.get_registry("pool").get("half_max") is namespace["HalfMax"]
    assert namespace["cfg"].pool.name == "half_max"
    assert 0.0 <= namespace["metrics"]["test/acc"] <= 1.0
    assert (tmp_path / "outputs" / "try" / "checkpoints" / "last.ckpt").is_file()
    assert any(isinstance(m, torch.nn.AvgPool2d) for m in namespace["net"].modules())


def test_the_reference_takes_plugins_as_every_command_does(
    tmp_path: Path, restore_registries, capsys, monkeypatch
) -> None:
    plugin = tmp_path / "ref_pool.py"
    plugin.write_text(
        "import cnnpl\nfrom torch import nn\n\n\n@cnnpl.register('pool', 'ref_pool')\nclass RefPool(nn.MaxPool2d):\n"
        '    """Max pooling, for the reference."""\n'
    )
    gen = _gen_reference()
    assert gen.main([f"plugins=[{plugin}]", str(tmp_path / "ref")]) == 0  # was two folders named after the words
    assert "### `pool=ref_pool`" in (tmp_path / "ref" / "components.md").read_text()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ref", "ref_pool.py"]
    assert gen.main(["a=b"]) == 2 and "usage: python scripts/gen_reference.py" in capsys.readouterr().err
    # helper-141: --help wrote the pages into a folder named --help
    monkeypatch.chdir(tmp_path)
    assert gen.main(["--help"]) == 0 and capsys.readouterr().out.startswith("usage: python scripts/gen_reference.py")
    assert gen.main(["--out"]) == 2 and "usage:" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ref", "ref_pool.py"]


@pytest.mark.parametrize(("script", "bad"), [("setup.sh", "--with_data"), ("build_docs.sh", "--site")])
def test_the_scripts_say_their_usage_and_refuse_an_unknown_option(script: str, bad: str) -> None:
    # helper-141: setup.sh --with_data ran the whole install and unpacked nothing; build_docs.sh --help made a folder
    for word, code in (("--help", 0), (bad, 2)):  # both answered before anything is installed or built
        done = subprocess.run(
            ["bash", str(REPO / "scripts" / script), word], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == code
        assert f"usage: bash scripts/{script}" in (done.stdout if code == 0 else done.stderr)


def test_reference_lists_every_component_and_its_parameters() -> None:
    from cnnpl.registry import parameters_of

    page = _gen_reference().components_page()
    for family in cnnpl.FAMILIES:
        for name in cnnpl.list_components(family):
            heading = f"### `{family}={name}`"
            assert heading in page
            section = page.split(heading, 1)[1].split("\n### ", 1)[0]
            for param in parameters_of(cnnpl.get_registry(family).get(name)):
                assert f"| `{param}` |" in section, (family, name, param)


def test_reference_lists_a_component_registered_later() -> None:
    from cnnpl.registry import REGISTRIES

    class Halve(cnnpl.build("pool", "avg").__class__):
        """Average pooling registered by this test."""

    cnnpl.register("pool", "docs_test_halve", Halve)
    try:
        page = _gen_reference().components_page()
        assert "### `pool=docs_test_halve`\n\nAverage pooling registered by this test." in page
    finally:
        del REGISTRIES["pool"]._entries["docs_test_halve"]


def test_reference_lists_every_config_option(tmp_path: Path) -> None:
    gen = _gen_reference()
    assert gen.main([str(tmp_path)]) == 0
    page = (tmp_path / "config.md").read_text()
    conf = REPO / "conf"
    for path in conf.glob("*/*.yaml"):
        assert f"### `{path.parent.name}={path.stem}`" in page
        assert path.read_text().rstrip() in page
    assert "### `pool=max`" in page and "Default: `max`." in page


def test_links_to_source_files_become_paths_and_broken_ones_stay(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "scripts" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    (tmp_path / "docs" / "guide").mkdir(parents=True)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "run.sh").write_text("echo\n")
    page = tmp_path / "docs" / "guide" / "page.md"
    text = "[the script](../../examples/run.sh), [gone](../../examples/gone.sh), [up](../index.md), ![i](../../x.png)"
    assert hooks.source_tree_links(text, page, tmp_path / "docs") == (
        "the script (`examples/run.sh`), [gone](../../examples/gone.sh), [up](../index.md), ![i](../../x.png)"
    )


def _nav_pages(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [page for item in node for page in _nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in _nav_pages(value)]
    return []


def test_every_page_is_in_the_navigation() -> None:
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    nav = set(_nav_pages(config["nav"]))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert not pages - nav, f"pages missing from mkdocs.yml nav: {sorted(pages - nav)}"
    generated = {f"reference/{name}" for name in _gen_reference().PAGES}
    assert generated <= nav


MARKDOWN_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?\)")  # [text](target) and ![image](target)


@pytest.mark.parametrize(
    "page", [REPO / "README.md", *sorted(DOCS.rglob("*.md"))], ids=lambda p: str(p.relative_to(REPO))
)
def test_relative_links_resolve_in_the_source_tree(page: Path) -> None:
    """Pages generated at build time (``reference/components.md``) do not exist here: name them in words."""
    text = FENCE.sub("", page.read_text())
    targets = [m.group(1) for m in MARKDOWN_LINK.finditer(text)]
    relative = [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("/")]
    broken = [t for t in relative if not (page.parent / t).exists()]
    assert not broken, f"{page.relative_to(REPO)}: links to files that do not exist in the source tree: {broken}"
