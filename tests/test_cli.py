"""What every command shares (progan_tf.cli): TensorFlow's settings and its quiet import."""

import os
import subprocess
import sys

from conftest import ROOT, cli_env

from progan_tf import cli


def test_onednn_is_turned_on_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    cli.tune_tensorflow()
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    cli.tune_tensorflow()
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"


FAKE_TENSORFLOW = """
import os
os.write(2, b"I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on. You may see ...\\n")
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to "
         b"STDERR\\n")
os.write(2, b"a real problem at import\\n")
"""


def test_quiet_import_drops_only_the_notices(tmp_path):
    """Catches: the oneDNN notice reaching the user, or the capture swallowing other output
    of the import (a real error must still be seen). A stand-in `tensorflow` module prints both."""
    (tmp_path / "tensorflow.py").write_text(FAKE_TENSORFLOW)
    script = (
        f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {ROOT!r}]; "
        "from progan_tf import cli; cli.quiet_tensorflow()"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=cli_env(), timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == "a real problem at import\n"
    verbose = script.replace(
        "quiet_tensorflow()", "quiet_tensorflow(verbose=True); import tensorflow"
    )
    out = subprocess.run(
        [sys.executable, "-c", verbose], capture_output=True, text=True, env=cli_env(), timeout=60
    )
    # --verbose: all of it
    assert "oneDNN custom operations are on" in out.stderr and "a real problem" in out.stderr
