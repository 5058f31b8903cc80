"""Every argparse-based command answers a usage error with one line and exit 1 (judgeforge.cli_args)."""

from __future__ import annotations

import pytest

from judgeforge import cli

CASES = {
    "merge": (["merge", "-o"], "merge: argument -o/--output: expected one argument"),
    "eval report": (["eval", "report"], "eval report: the following arguments are required: dirs"),
    "eval ablation": (["eval", "ablation", "--bogus"], "eval ablation: unrecognized arguments: --bogus"),
    "data validate": (["data", "validate"], "data validate: the following arguments are required: sources"),
    "data (bad subcommand)": (["data", "frob"], "data: argument"),
    "data pair": (["data", "pair"], "data pair: the following arguments are required"),
    "sweep": (["sweep"], "sweep: the following arguments are required: --absolute, --relative"),
    "quickstart": (["quickstart", "--seed", "x"], "quickstart: argument --seed: invalid int value: 'x'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_usage_error_is_one_line_and_exit_1(case, capsys):
    argv, expected = CASES[case]
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and err.startswith(f"judgeforge: error: {expected}"), err
    assert "usage:" not in err and "Traceback" not in err
    assert err.rstrip().endswith("--help'")  # where to look next


def test_quickstart_options_are_declared_once():
    from dataclasses import asdict

    from judgeforge.pipeline.quickstart import QuickstartConfig, parse_args

    cfg, progress = parse_args([])
    assert cfg == QuickstartConfig() and progress
    cfg, progress = parse_args(["-o", "x", "--expert-lr", "1e-3", "--train-rows", "7", "--no-progress"])
    assert (cfg.out, cfg.expert_learning_rate, cfg.train_rows, progress) == ("x", 1e-3, 7, False)
    assert asdict(cfg)["hidden"] == 128  # not an option: keeps its default
