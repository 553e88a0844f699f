"""Every console script: `--help` without heavy imports, with a description, an example and help for every option;
every command-line mistake and failed run one clear line with a non-zero exit status; `--debug` shows the traceback."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_faults import base_checkpoint  # noqa: F401 (fixture: a tiny 2-layer DINOv3 base folder)

from spatialboost import cli


ROOT = Path(__file__).resolve().parents[1]
# `[project.scripts]` of pyproject.toml: name = "module:function" (tomllib is not in Python 3.10).
SCRIPTS = dict(
    re.findall(r'^(spatialboost-[\w-]+) = "([\w.:]+)"$', (ROOT / "pyproject.toml").read_text(), flags=re.MULTILINE)
)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def command(name: str, *argv: str, cwd=None) -> subprocess.CompletedProcess:
    """Runs console script `name` as its entry point in `pyproject.toml` names it, in a fresh interpreter."""
    module, function = SCRIPTS[name].split(":")
    code = f"import sys; from {module} import {function}; {function}(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600
    )


def error_line(result: subprocess.CompletedProcess, name: str) -> str:
    """The one line a failed command leaves on stderr (and checks that it is the only one, with no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{name}: error: "), lines[0]
    return lines[0]


def test_every_console_script_answers_help_without_torch_transformers_or_datasets():
    code = (
        "import sys\n"
        "for entry in sys.argv[1:]:\n"
        "    module, function = entry.split(':')\n"
        "    try:\n"
        "        getattr(__import__(module, fromlist=[function]), function)(['--help'])\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, (entry, exit.code)\n"
        "heavy = sorted(name for name in ('torch', 'transformers', 'datasets', 'matplotlib') if name in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *SCRIPTS.values()], capture_output=True, text=True, env=ENV, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"
    assert result.stdout.count("example:\n  spatialboost-") == len(SCRIPTS)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_has_a_description_and_every_option_has_help_text_with_one_default(name, capsys):
    entry = getattr(cli, SCRIPTS[name].split(":")[1])
    with pytest.raises(SystemExit) as exited:
        entry(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    usage, description = text.split("\n\n")[:2]
    assert len(description.split()) >= 15, description
    flags = text.split("\noptions:\n", 1)[1].split("\nexample:")[0]
    for chunk in flags.split("\n  -")[1:]:
        flag_and_help = re.split(r"\s{2,}", chunk.strip(), maxsplit=1)
        assert len(flag_and_help) == 2 and flag_and_help[1].strip(), f"{name}: no help for -{chunk.strip()}"
        assert chunk.count("default") <= 1, f"{name}: default given twice in -{chunk.strip()}"


def test_the_multiview_multiturn_help_lists_only_what_it_accepts(capsys):
    with pytest.raises(SystemExit):
        cli.build_multiview_multiturn(["--help"])
    text = capsys.readouterr().out
    for refused in ("posed_rgbd", "--writer", "--llm-", "--input-dir", "--reconstruction-model"):
        assert refused not in text


USAGE_ERRORS = [
    ("spatialboost-build-multiturn", [], "--num-samples is required for source 'synthetic'"),
    ("spatialboost-build-multiturn", ["--source", "rgbd", "--input-dir", "no-such-folder"], "no-such-folder: no such folder"),
    ("spatialboost-build-multiturn", ["--num-samples", "many"], "argument --num-samples: invalid int value: 'many'"),
    ("spatialboost-build-multiturn", ["--num-samples", "2", "--shard-index", "3"], "shard_index must be in [0, 1)"),
    ("spatialboost-build-multiview-vqa", ["--source", "posed_rgbd"], "--input-dir is required for source 'posed_rgbd'"),
    ("spatialboost-build-multiview-vqa", ["--num-samples", "2", "--view-mix", "3:1"], "--view-mix needs views in"),
    ("spatialboost-build-multiview-multiturn", ["--source", "posed_rgbd"], "invalid choice: 'posed_rgbd'"),
    ("spatialboost-build-multiview-multiturn", ["--num-samples", "2", "--writer", "llm"], "unrecognized arguments: --writer llm"),
    ("spatialboost-convert", ["only-one-argument"], "the following arguments are required: output_dir"),
    ("spatialboost-compare", ["--encoder", "base=./no-such-encoder"], "no such folder ./no-such-encoder"),
    ("spatialboost-compare", ["--encoder", "base=a/b", "--data", "rgbd"], "--rgbd-dir is required with --data rgbd"),
    ("spatialboost-compare", ["--encoder", "base=a/b", "--data", "hub", "--dataset-name", "org/x"], "needs at least one of --depth-column"),
    ("spatialboost-quickstart", ["--image-size", "20"], "--image-size must be a positive multiple of 16, got 20"),
    ("spatialboost-tiny", ["--num-samples", "x"], "argument --num-samples: invalid int value: 'x'"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "argv", "expected"), USAGE_ERRORS)
def test_usage_errors_are_one_line_and_exit_2(name, argv, expected, tmp_path):
    result = command(name, *argv, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in error_line(result, name)
    assert not any(tmp_path.iterdir())  # nothing written


def test_layers_out_of_range_is_one_line_naming_the_layers(base_checkpoint, tmp_path):  # noqa: F811 (fixture)
    two_layer_base = base_checkpoint[0]
    result = command("spatialboost-convert", str(two_layer_base), str(tmp_path / "out"), "--layers", "7")
    assert result.returncode == 1
    line = error_line(result, "spatialboost-convert")
    assert "[7]" in line and "out of range" in line and "2 layers" in line
    assert not (tmp_path / "out").exists()
    debug = command("spatialboost-convert", str(two_layer_base), str(tmp_path / "out"), "--layers", "7", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ValueError" in debug.stderr


@pytest.mark.slow
def test_resume_with_other_settings_is_one_line_and_debug_shows_the_traceback(tmp_path):
    build = ["--num-samples", "1", "--image-width", "64", "--image-height", "48", "--min-yield", "0"]
    first = command("spatialboost-build-multiturn", *build, "--output-dir", "out", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = command("spatialboost-build-multiturn", *build, "--output-dir", "out", "--seed", "5", cwd=tmp_path)
    assert again.returncode == 1
    line = error_line(again, "spatialboost-build-multiturn")
    assert "out" in line and "seed" in line
    debug = command(
        "spatialboost-build-multiturn", *build, "--output-dir", "out", "--seed", "5", "--debug", cwd=tmp_path
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_an_unexpected_error_is_one_line_with_its_type(capsys):
    parser = cli.CommandParser("spatialboost-demo", "A demo command.", "spatialboost-demo")

    def run(args):
        raise KeyError("a key that is not there\nwith a second line")

    with pytest.raises(SystemExit) as exited:
        cli.run_command(parser, run, [])
    message = exited.value.code  # printed to stderr by the interpreter, exit status 1
    assert message == (
        "spatialboost-demo: error: 'a key that is not there\\nwith a second line' (KeyError; --debug shows the traceback)"
    )
    with pytest.raises(KeyError):
        cli.run_command(parser, run, ["--debug"])


def test_a_recipe_error_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "stage3.py"), "--config", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert result.returncode == 1
    line = error_line(result, "stage3.py")
    assert "missing.yaml" in line
