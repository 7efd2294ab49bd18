"""MkDocs hooks: the pages and files of the site that are generated from the code at build time.

- ``<!-- optimizers -->`` in a page becomes one section per optimizer of
  ``extensor.training.optimizers.__all__`` and per wrapper of ``extensor.training`` (Lookahead,
  AveragedModel): equations, paper, reference, options from the signature and docstring, plot.
  A new optimizer appears without editing any page; `docs/catalog.py` may add its LaTeX.
- ``<!-- schedules -->`` becomes one section per curve of
  ``extensor.training.schedulers.curves.CURVES``.
- ``api/*.md``: one API reference page per package, listing every name of its ``__all__``.
- ``javascripts/tex-svg.js``: MathJax, served from the installed ``django-static-mathjax``
  package (no CDN: the site works offline).
- The plots and command transcripts of ``docs/generated/`` are drawn by `gen_plots.py` and
  `gen_cli.py` when missing (``python docs/build.py`` always redraws them).
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

DOCS = Path(__file__).resolve().parent
GENERATED = DOCS / "generated"
sys.path.insert(0, str(DOCS))

from catalog import ENTRIES  # noqa: E402

API_MODULES = (
    "extensor",
    "extensor.autograd",
    "extensor.nn",
    "extensor.data",
    "extensor.training",
    "extensor.training.optimizers",
    "extensor.training.schedulers",
    "extensor.distributed",
    "extensor.models",
)
WRAPPERS = ("Lookahead", "AveragedModel")


def api_page(module: str) -> str:
    """The API page's path of `module`: ``api/training.optimizers.md`` for extensor.training.optimizers."""
    short = module.removeprefix("extensor").removeprefix(".") or "extensor"
    return f"api/{short}.md"


def optimizer_names() -> list[str]:
    """The optimizer classes of ``extensor.training.optimizers.__all__``, in its order."""
    optim = importlib.import_module("extensor.training.optimizers")
    return [
        n
        for n in optim.__all__
        if isinstance(getattr(optim, n), type)
        and issubclass(getattr(optim, n), optim.Optimizer)
        and getattr(optim, n) is not optim.Optimizer
    ]


def _expected_outputs() -> list[Path]:
    names = [*optimizer_names(), *WRAPPERS]
    curves = importlib.import_module("extensor.training.schedulers.curves").CURVES
    if str(DOCS) not in sys.path:
        sys.path.insert(0, str(DOCS))
    cli = importlib.import_module("gen_cli").COMMANDS
    return (
        [GENERATED / f"rosenbrock-{n}.png" for n in names]
        + [GENERATED / f"schedule-{n}.png" for n in curves]
        + [GENERATED / f"cli-{n}.txt" for n in cli]
    )


def on_config(config: Any) -> Any:
    """Draw the plots and capture the command transcripts if any is missing."""
    missing = [p for p in _expected_outputs() if not p.exists()]
    if any(p.suffix == ".png" for p in missing):
        subprocess.run([sys.executable, str(DOCS / "gen_plots.py")], check=True)
    if any(p.suffix == ".txt" for p in missing):
        subprocess.run([sys.executable, str(DOCS / "gen_cli.py")], check=True)
    return config


def _home(obj: Any, module: str) -> str:
    """The API module whose page documents `obj`: the most specific one exporting it, else `module`."""
    best = module
    for other in API_MODULES:
        mod = importlib.import_module(other)
        exported = any(getattr(mod, n, None) is obj for n in mod.__all__)
        if exported and len(other) > len(best) and getattr(obj, "__module__", "").startswith(other):
            best = other
    return best


def _link(module: str, name: str, home: str) -> str:
    """A Markdown link to the documentation of `module`.`name`."""
    obj = getattr(importlib.import_module(module), name)
    if inspect.ismodule(obj) and obj.__name__ in API_MODULES:
        return f"[`{name}`]({api_page(obj.__name__).removeprefix('api/')})"
    return f"[`{name}`][{home}.{name}]"


def _api_markdown(module: str) -> str:
    mod = importlib.import_module(module)
    names = list(mod.__all__)
    homes = {name: _home(getattr(mod, name), module) for name in names}
    links = ", ".join(_link(module, n, homes[n]) for n in names)
    lines = [
        f"# `{module}`",
        "",
        (inspect.getdoc(mod) or "").split("\n\n")[0],
        "",
        f"Public names (`__all__`): {links}",
        "",
    ]
    for name in names:
        obj = getattr(mod, name)
        if inspect.ismodule(obj) and obj.__name__ in API_MODULES:
            lines += [
                f"## `{name}`",
                "",
                f"The package [`{obj.__name__}`]({api_page(obj.__name__).removeprefix('api/')}).",
                "",
            ]
            continue
        if homes[name] != module:
            lines += [
                f"## `{name}`",
                "",
                f"`{module}.{name}` is [`{homes[name]}.{name}`][{homes[name]}.{name}].",
                "",
            ]
            continue
        options = (
            "    options:\n      members: true\n      show_submodules: false\n"
            if inspect.ismodule(obj)
            else ""
        )
        lines += [f"::: {module}.{name}", options]
    return "\n".join(lines)


def on_files(files: Files, config: Any) -> Files:
    """Add the API pages and MathJax to the site."""
    for module in API_MODULES:
        files.append(File.generated(config, api_page(module), content=_api_markdown(module)))
    mathjax = importlib.import_module("mathjax")
    script = Path(next(iter(mathjax.__path__))) / "static" / "mathjax" / "es5" / "tex-svg.js"
    files.append(File.generated(config, "javascripts/tex-svg.js", abs_src_path=str(script)))
    return files


def _args_section(doc: str) -> dict[str, str]:
    """The ``Args:`` entries of a Google-style docstring, name -> description (one line)."""
    found: dict[str, str] = {}
    lines = doc.splitlines()
    if "Args:" not in [line.strip() for line in lines]:
        return found
    current: list[str] = []
    for line in lines[[line.strip() for line in lines].index("Args:") + 1 :]:
        if not line.strip() or not line.startswith("    "):
            break
        entry = re.match(r"^    (\w+(?:, \w+)*):\s*(.*)$", line)
        if entry:
            current = entry.group(1).split(", ")
            for name in current:
                found[name] = entry.group(2)
        else:
            for name in current:
                found[name] += " " + line.strip()
    return found


def _plain_signature(name: str, obj: Any) -> str:
    """``name(a, b=1, *, c=False)``: the signature without annotations."""
    params = [
        p.replace(annotation=inspect.Parameter.empty) for p in inspect.signature(obj).parameters.values()
    ]
    return f"{name}{inspect.Signature(params)}"


def _docstring_equations(doc: str) -> str:
    """The first literal block (after ``::``) of a docstring, for optimizers without LaTeX."""
    match = re.search(r"::\n\n((?:[ ]{8}.*\n|\n)+)", doc)
    return inspect.cleandoc(match.group(1)) if match else ""


def _option_rows(obj: Any, doc: str) -> list[str]:
    described = _args_section(doc)
    rows = ["| option | default | kind | meaning |", "|---|---|---|---|"]
    for param in inspect.signature(obj).parameters.values():
        if param.name in ("params", "self", "optimizer", "model"):
            continue
        default = "required" if param.default is inspect.Parameter.empty else f"`{param.default!r}`"
        kind = "keyword-only" if param.kind is inspect.Parameter.KEYWORD_ONLY else "positional or keyword"
        meaning = described.get(param.name, "").replace("|", "\\|")
        rows.append(f"| `{param.name}` | {default} | {kind} | {meaning} |")
    return rows


def _module_citation(obj: Any) -> str:
    doc = inspect.getdoc(sys.modules[obj.__module__]) or ""
    paragraphs = doc.split("\n\n")
    return " ".join(paragraphs[1].split()) if len(paragraphs) > 1 else ""


def optimizer_section(name: str) -> str:
    """The Markdown section of one optimizer or wrapper."""
    module = "extensor.training" if name in WRAPPERS else "extensor.training.optimizers"
    obj = getattr(importlib.import_module(module), name)
    doc = inspect.getdoc(obj) or ""
    entry = ENTRIES.get(name, {})
    signature = _plain_signature(name, obj)
    summary = doc.split("\n\n")[0].replace("\n", " ")
    lines = [
        f"## {name}",
        "",
        summary,
        "",
        f"- **Paper:** {entry.get('paper') or _module_citation(obj) or 'see the docstring'}",
        f"- **Tested against:** {entry.get('reference') or summary}",
        f"- **API:** [`{module}.{name}`][{module}.{name}]",
        "",
    ]
    if "math" in entry:
        lines += ["$$", "\\begin{gathered}", entry["math"].strip(), "\\end{gathered}", "$$", ""]
    else:
        lines += ["```text", _docstring_equations(doc), "```", ""]
    lines += ["```text", signature, "```", "", *_option_rows(obj, doc), ""]
    state = re.search(r"^State[^\n]*(?:\n(?!\n)[^\n]*)*", doc, re.M)
    if state:
        lines += [" ".join(state.group(0).split()), ""]
    lines += [f"![{name} on the Rosenbrock function](generated/rosenbrock-{name}.png)", ""]
    return "\n".join(lines)


def schedule_section(name: str) -> str:
    """The Markdown section of one scheduler curve."""
    curve = importlib.import_module("extensor.training.schedulers.curves").CURVES[name]
    doc = (inspect.getdoc(curve) or "").split("\n\n")[0].replace("\n", " ")
    return "\n".join(
        [
            f"### {name}",
            "",
            doc,
            "",
            "```text",
            f"curves.{curve.__name__}{inspect.signature(curve)}",
            "```",
            "",
            f"![{name}](generated/schedule-{name}.png)",
            "",
        ]
    )


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Expand the ``<!-- optimizers -->`` and ``<!-- schedules -->`` markers."""
    if "<!-- optimizers -->" in markdown:
        sections = [optimizer_section(n) for n in [*optimizer_names(), *WRAPPERS]]
        markdown = markdown.replace("<!-- optimizers -->", "\n".join(sections))
    if "<!-- schedules -->" in markdown:
        curves = importlib.import_module("extensor.training.schedulers.curves").CURVES
        markdown = markdown.replace("<!-- schedules -->", "\n".join(schedule_section(n) for n in curves))
    return markdown
