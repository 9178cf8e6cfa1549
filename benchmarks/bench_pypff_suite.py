"""Run pypff 1.0.4's own test suite (``src/ci`` of its sdist) against ``pfflake.pypff``.

Run:  uv run --group bench python benchmarks/bench_pypff_suite.py [--also-pypff]

Fetches the sdist into a cache (see ``_pypff_sdist.py``), then runs its
suite unchanged with the ``pypff_alias`` pytest plugin, which makes every
``import pypff...`` resolve to ``pfflake.pypff``. Prints the counts and each
failing test with its error; failures that touch pypff's private internals
(an underscore attribute, ``patch.object`` of one) are listed as *private*,
anything else as *PUBLIC* (a regression: exit status 1). ``--also-pypff``
runs the suite against the real pypff first, for the baseline count.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from _pypff_sdist import sdist_dir

HERE = Path(__file__).resolve().parent
# an underscore attribute of a pypff object, or a mock patch of one
_PRIVATE = re.compile(r"has no attribute '_\w+'|patch\.object\([^)]*'_\w+'")


def run_suite(root: Path, alias: bool) -> list[tuple[str, str, str]]:
    """``(test id, outcome, message)`` for every test of ``src/ci``."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "src/ci",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            "-o",
            "junit_family=xunit2",
        ]
        env = dict(os.environ)
        if alias:
            cmd[3:3] = ["-p", "pypff_alias"]
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        results = []
        for case in ET.parse(report).getroot().iter("testcase"):
            test = f"{case.get('classname')}::{case.get('name')}"
            outcome, message = "passed", ""
            for tag in ("failure", "error", "skipped"):
                node = case.find(tag)
                if node is not None:
                    outcome = {"failure": "failed", "error": "error"}.get(tag, tag)
                    message = (node.get("message") or "") + "\n" + (node.text or "")
            results.append((test, outcome, message))
        return results


def summary(results: list[tuple[str, str, str]]) -> str:
    counts: dict[str, int] = {}
    for _, outcome, _ in results:
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + f" (of {len(results)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--also-pypff", action="store_true", help="baseline run with real pypff")
    args = ap.parse_args()
    root = sdist_dir()
    if args.also_pypff:
        print(f"pypff 1.0.4 itself:        {summary(run_suite(root, alias=False))}")
    results = run_suite(root, alias=True)
    print(f"pypff -> pfflake.pypff:    {summary(results)}")
    public = 0
    for test, outcome, message in results:
        if outcome not in ("failed", "error"):
            continue
        first = next((ln for ln in message.splitlines() if ln.strip()), "")
        private = bool(_PRIVATE.search(message))
        public += not private
        print(f"  {'private' if private else 'PUBLIC '}  {test}\n           {first[:110]}")
    return 1 if public else 0


if __name__ == "__main__":
    raise SystemExit(main())
