"""What the commands share (b2v_rnn.cli): one-line errors and warnings, --amp's context."""
import subprocess
import sys
import warnings

import pytest
import torch

from b2v_rnn.cli import autocast_for, run_main
from b2v_rnn.errors import UserError


def test_warnings_are_one_line_without_source():
    code = ("import warnings; from b2v_rnn.cli import run_main\n"
            "def main(argv):\n    warnings.warn('the perceptual term is disabled')\n"
            "run_main(main, [])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stderr == "warning: the perceptual term is disabled\n"


def test_expected_errors_exit_2_with_one_line(capsys):
    def main(argv):
        raise UserError("--T 4: the number of frames must be odd and >= 3")

    with pytest.raises(SystemExit) as stop, warnings.catch_warnings():
        run_main(main, [])
    assert stop.value.code == 2 and capsys.readouterr().err == "error: --T 4: the number of frames must be odd and >= 3\n"


def test_amp_is_bfloat16_autocast_on_cpu_too():
    with autocast_for(torch.device("cpu"), True):
        out = torch.nn.functional.conv2d(torch.rand(1, 2, 5, 5), torch.rand(3, 2, 3, 3))
    assert out.dtype == torch.bfloat16
    with autocast_for(torch.device("cpu"), False):
        assert torch.nn.functional.conv2d(torch.rand(1, 2, 5, 5), torch.rand(3, 2, 3, 3)).dtype == torch.float32
