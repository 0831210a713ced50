"""Memory-only commands must start fast: no model runtime is imported for them."""

import subprocess
import sys

HEAVY = ("llama_cpp", "torch", "llguidance", "numpy", "huggingface_hub", "transformers")


def test_memory_commands_do_not_import_the_model_runtime(tmp_path):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from memcli.cli.app import app\n"
        "result = CliRunner().invoke(app, ['mem', 'ls', '--limit', '1'])\n"
        "assert result.exit_code == 0, result.output\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"MEMCLI_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]"
