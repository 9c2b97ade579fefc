"""docs/guide.md's "Use it from Python" snippet, run as written."""

import os
import re

from progan_tf.train import DEMO_DATA

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_use_it_from_python_snippet_runs(tmp_path, capsys):
    guide = open(os.path.join(ROOT, "docs", "guide.md")).read()
    section = guide.split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {"DEMO_DATA": DEMO_DATA, "RUN_DIR": str(tmp_path / "run")}
    exec(compile(code, "docs/guide.md", "exec"), namespace)  # noqa: S102 - the repository's own docs
    swd, floor = (float(v) for v in capsys.readouterr().out.split()[-2:])
    assert swd > 0 and floor > 0
    assert (tmp_path / "run" / "grid.png").exists()
    assert namespace["fakes"].shape == (16, 8, 8, 3) and namespace["run"].resolution == 8
