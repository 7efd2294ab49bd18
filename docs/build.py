"""Build the documentation site: draw the plots, capture the command transcripts, ``mkdocs build --strict``.

    python docs/build.py                 # everything, into build/site
    python docs/build.py --no-generate   # only the MkDocs build (reuses docs/generated/)
    python docs/build.py --examples      # also run the pages' ```python blocks (tests/test_docs.py)

Exit status is non-zero if any step fails; the seconds each step took are printed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def step(label: str, command: list[str]) -> None:
    """Run `command` from the repository root; print how long it took; stop on failure."""
    started = time.perf_counter()
    env = dict(
        os.environ, NO_MKDOCS_2_WARNING="1", OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1")
    )
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    print(f"== {label}: {time.perf_counter() - started:.1f} s", flush=True)
    if done.returncode:
        sys.exit(done.returncode)


def main(argv: list[str] | None = None) -> None:
    """Run the build steps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-generate", action="store_true", help="skip the plots and transcripts")
    parser.add_argument("--examples", action="store_true", help="also run the pages' code examples")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if not args.no_generate:
        step("plots (docs/gen_plots.py)", [sys.executable, "docs/gen_plots.py"])
        step("command transcripts (docs/gen_cli.py)", [sys.executable, "docs/gen_cli.py"])
    step("mkdocs build --strict", [sys.executable, "-m", "mkdocs", "build", "--strict"])
    if args.examples:
        step(
            "page examples (tests/test_docs.py)",
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_docs.py"],
        )
    print(f"== docs built in {time.perf_counter() - started:.1f} s: {ROOT / 'build' / 'site'}")


if __name__ == "__main__":
    main()
