"""Every SpatialBoost console script: its parser, its one-line errors, and the work it hands to the library.

SpatialBoost (https://arxiv.org/abs/2603.22057). The parsers are built here, from the builders' argument dataclasses
(`dataset_builders/arguments.py`) or by hand, with nothing heavier than numpy imported, so that `--help` and usage
errors answer at once; torch, transformers and `datasets` are imported only once the command line is valid.

```
argv -> CommandParser (usage error: one line, exit 2) -> arguments (checks: one line, exit 2)
     -> import the library and run (any error: one line, exit 1; a build below min_yield: exit 2)
```

`--debug` (every command) lets the error through with its traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import textwrap
import types
import typing
from collections.abc import Callable
from pathlib import Path


# Errors with a message written for the user: printed as they are. Anything else is printed with its type and the
# hint that `--debug` shows where it came from.
EXPECTED_ERRORS = (ValueError, OSError, RuntimeError, ImportError)


class CommandFailed(Exception):
    """A command's outcome that is not a success, with the exit status to leave with.

    Args:
        message (`str`): What went wrong, in one line.
        exit_status (`int`): 1 for a failed run, 2 for a build whose yield fell below `min_yield`.
    """

    def __init__(self, message: str, exit_status: int = 1):
        super().__init__(message)
        self.exit_status = exit_status


def one_line(error: BaseException) -> str:
    """`error`'s message on one line (white space collapsed), or its type when it has no message."""
    return " ".join(str(error).split()) or type(error).__name__


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and example's line breaks; adds `(default: ...)` where the help does not say it."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default is argparse.SUPPRESS:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"


class CommandParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose usage errors are one line and which takes `--debug`.

    Args:
        prog (`str`): The console script's name.
        description (`str`): What the command does.
        example (`str`): A command line that works, shown at the end of `--help`.
    """

    def __init__(self, prog: str, description: str, example: str, usage: str | None = None):
        paragraphs = (textwrap.fill(paragraph, 100) for paragraph in description.split("\n\n"))
        super().__init__(
            prog=prog,
            usage=usage,
            description="\n\n".join(paragraphs),
            epilog=f"example:\n  {example}",
            formatter_class=HelpFormatter,
        )
        self.add_argument("--debug", action="store_true", help="On an error, show the full traceback.")

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _string_to_bool(text: str) -> bool:
    if text.lower() in ("true", "yes", "1"):
        return True
    if text.lower() in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_dataclass_arguments(parser: argparse.ArgumentParser, arguments_class: type) -> None:
    """Adds one flag per field of `arguments_class`, spelled `--name` and `--dashed-name` as `HfArgumentParser` does:
    `Literal` fields take one of their values, `bool` ones `--flag` or `--flag false`, `list` ones several values.
    Fields whose metadata names a `source` are listed under that source in `--help`."""
    hints = typing.get_type_hints(arguments_class)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for field in dataclasses.fields(arguments_class):
        kind, options = hints[field.name], {}
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            kind = next(member for member in typing.get_args(kind) if member is not type(None))
        if field.default is not dataclasses.MISSING:
            options["default"] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            options["default"] = field.default_factory()
        else:
            options["required"] = True
        if typing.get_origin(kind) is typing.Literal:
            options["choices"] = typing.get_args(kind)
        elif kind is bool:
            options.update(type=_string_to_bool, nargs="?", const=True, metavar="true|false")
        elif typing.get_origin(kind) is list:
            options.update(type=typing.get_args(kind)[0], nargs="+")
        else:
            options["type"] = kind
        source = field.metadata.get("source")
        target = parser
        if source is not None:
            if source not in groups:
                groups[source] = parser.add_argument_group(f"options of --source {source}")
            target = groups[source]
        flag = f"--{field.name.replace('_', '-')}"
        target.add_argument(flag, dest=field.name, help=field.metadata["help"].replace("%", "%%"), **options)
        if "_" in field.name:  # the underscore spelling works too, unlisted
            options.pop("required", None)
            options["default"] = argparse.SUPPRESS
            parser.add_argument(f"--{field.name}", dest=field.name, help=argparse.SUPPRESS, **options)


def run_command(
    parser: CommandParser,
    run: Callable,
    argv: list[str] | None,
    make_arguments: Callable[[argparse.Namespace], object] | None = None,
) -> None:
    """Parses `argv`, checks the arguments and runs; every failure leaves one line on stderr and a non-zero status.

    Args:
        parser (`CommandParser`): The command's parser.
        run (`Callable`): Does the work with the arguments (imports the library itself).
        argv (`list[str]`, *optional*): The command line (default: `sys.argv[1:]`).
        make_arguments (`Callable`, *optional*): Turns the parsed namespace into the arguments object; its
            `ValueError`s are usage errors (exit status 2).
    """
    namespace = parser.parse_args(argv)
    debug = namespace.debug
    del namespace.debug
    try:
        arguments = namespace if make_arguments is None else make_arguments(namespace)
    except ValueError as error:
        if debug:
            raise
        parser.error(one_line(error))
    try:
        run(arguments)
    except KeyboardInterrupt:
        if debug:
            raise
        raise SystemExit(f"{parser.prog}: interrupted") from None
    except Exception as error:
        if debug:
            raise
        if isinstance(error, CommandFailed) and error.exit_status != 1:
            print(f"{parser.prog}: error: {one_line(error)}", file=sys.stderr)
            raise SystemExit(error.exit_status) from None
        hint = (
            ""
            if isinstance(error, EXPECTED_ERRORS + (CommandFailed,))
            else f" ({type(error).__name__}; --debug shows the traceback)"
        )
        raise SystemExit(f"{parser.prog}: error: {one_line(error)}{hint}") from None


def _dataclass_maker(arguments_class: type) -> Callable[[argparse.Namespace], object]:
    return lambda namespace: arguments_class(**vars(namespace))


# Dataset builders ------------------------------------------------------------------------------------------------


def _run_build(module_name: str) -> Callable:
    def run(args) -> None:
        import importlib

        module = importlib.import_module(f"dataset_builders.{module_name}")
        from dataset_builders.building import YieldTooLowError

        try:
            manifest = module.build(args)
        except YieldTooLowError as error:
            raise CommandFailed(str(error), exit_status=2) from error
        views = f" (views: {manifest['views'] or 'none'})" if "views" in manifest else ""
        print(
            f"built {manifest['built']} of {manifest['attempted']} samples into {args.output_dir}{views}; "
            f"skipped: {manifest['skipped'] or 'none'}"
        )

    return run


def _builder(prog: str, arguments_class: type, module_name: str, description: str, example: str, argv) -> None:
    parser = CommandParser(prog, description, example, usage=f"{prog} [--source SOURCE] [options]")
    add_dataclass_arguments(parser, arguments_class)
    run_command(parser, _run_build(module_name), argv, _dataclass_maker(arguments_class))


BUILD_NOTE = (
    "Sample i depends on (seed, i) only; rerunning the same command resumes a killed build, and a folder built with "
    "other settings is refused. Bad inputs are counted skips; a build whose yield falls below --min-yield stops "
    "with exit status 2."
)


def build_multiturn(argv: list[str] | None = None) -> None:
    """`spatialboost-build-multiturn`."""
    from dataset_builders.arguments import MultiturnArguments

    _builder(
        "spatialboost-build-multiturn",
        MultiturnArguments,
        "multiturn",
        "Build the single-view multi-turn spatial reasoning dataset (SpatialBoost stage 3): 5 pixel-level, 4 "
        "object-level, 1 scene-level and 2 caption turns per image, from rendered scenes (exact ground truth), "
        "RGB-D folders, image folders or a Hub dataset (the last ones through perception models).\n\n" + BUILD_NOTE,
        "spatialboost-build-multiturn --source synthetic --num-samples 100 --output-dir multiturn --num-proc 2",
        argv,
    )


def build_multiview_vqa(argv: list[str] | None = None) -> None:
    """`spatialboost-build-multiview-vqa`."""
    from dataset_builders.arguments import MultiviewVQAArguments

    _builder(
        "spatialboost-build-multiview-vqa",
        MultiviewVQAArguments,
        "multiview_vqa",
        "Build the multi-view VQA dataset (SpatialBoost stage 2): 2, 4 or 8 views chosen by covisibility, with "
        "common, adversarial (false premise) and multiple-choice questions written from the shared 3D geometry; "
        "from rendered scenes, posed RGB-D sequences (Redwood, ScanNet) or unposed frames (VGGT).\n\n" + BUILD_NOTE,
        "spatialboost-build-multiview-vqa --source synthetic --num-samples 100 --output-dir mv-vqa",
        argv,
    )


def build_multiview_multiturn(argv: list[str] | None = None) -> None:
    """`spatialboost-build-multiview-multiturn`."""
    from dataset_builders.arguments import MultiviewMultiturnArguments

    _builder(
        "spatialboost-build-multiview-multiturn",
        MultiviewMultiturnArguments,
        "multiview_multiturn",
        "Build the multi-view multi-turn spatial reasoning dataset (SpatialBoost stage 3): the 12-turn structure "
        "over 2, 4 or 8 views of one rendered scene, with cross-view questions. Rendered scenes only: objects need "
        "instance ids shared across views. Questions come from templates.\n\n" + BUILD_NOTE,
        "spatialboost-build-multiview-multiturn --num-samples 100 --output-dir mv-multiturn",
        argv,
    )


# Encoders, training set-up, probes -------------------------------------------------------------------------------


def convert(argv: list[str] | None = None) -> None:
    """`spatialboost-convert BASE OUTPUT_DIR`: a refused conversion is one line naming the checkpoint, exit 1."""
    parser = CommandParser(
        "spatialboost-convert",
        "Convert a DINOv3 ViT or SigLIP / SigLIP2 checkpoint (Hub id or folder) into a SpatialBoost encoder folder: "
        "every chosen attention layer gets a second branch Attn+ (a copy) and a mix logit a, so the outputs equal "
        "the base's until they are trained. The base is checked before anything is written.",
        "spatialboost-convert facebook/dinov3-vitb16-pretrain-lvd1689m ./dinov3-vitb16-spatialboost --revision <commit>",
    )
    parser.add_argument("base", help="Hub id or local folder of a DINOv3 ViT, SigLIP or SigLIP2 checkpoint.")
    parser.add_argument("output_dir", help="Folder to write the SpatialBoost encoder to.")
    parser.add_argument(
        "--layers", type=int, nargs="+", default=None, help="Indices of the layers that get Attn+ (default: all)."
    )
    parser.add_argument("--revision", default="main", help="Revision (commit, tag, branch) of a Hub checkpoint.")
    parser.add_argument("--push-to-hub", "--push_to_hub", default=None, help="Also push the result to this repo id.")
    parser.add_argument("--private", action="store_true", help="Create that Hub repo private.")

    def run(args) -> None:
        from modeling_spatialboost.convert_to_spatialboost import convert_to_spatialboost

        model = convert_to_spatialboost(args.base, boost_layers=args.layers, revision=args.revision)
        model.save_pretrained(args.output_dir)
        trainable = sum(p.numel() for name, p in model.named_parameters() if ".attn_plus." in name)
        print(
            f"Converted {args.base} ({model.config.num_hidden_layers} layers) into {type(model).__name__}: "
            f"dual-channel attention in layers {model.config.boosted_layer_indices}, "
            f"{trainable:,} new trainable parameters. Saved to {args.output_dir}."
        )
        if args.push_to_hub:
            url = model.push_to_hub(args.push_to_hub, private=args.private)
            print(f"Pushed to {url}")

    run_command(parser, run, argv)


def tiny(argv: list[str] | None = None) -> None:
    """`spatialboost-tiny`: the offline tiny set-up the tiny recipes train."""
    parser = CommandParser(
        "spatialboost-tiny",
        "Write the offline tiny set-up that recipes/configs/tiny/*.yaml train: a tiny random-weight DINOv3 base "
        "encoder, a tiny random LM with a tokenizer trained on the data, and rows of multi-turn data. Nothing "
        "here is a trained model.",
        "spatialboost-tiny --output-dir tiny-spatialboost",
    )
    parser.add_argument("--output-dir", default="tiny-spatialboost", help="Folder to write into.")
    parser.add_argument("--num-samples", type=int, default=64, help="Rows of training data.")

    def run(args) -> None:
        from .tiny import write_tiny_setup

        folder = write_tiny_setup(args.output_dir, num_samples=args.num_samples)
        print(
            f"Wrote a tiny base encoder, LM + tokenizer (RANDOM weights) and {args.num_samples} rows under {folder}/"
        )

    run_command(parser, run, argv)


def quickstart_parser() -> CommandParser:
    parser = CommandParser(
        "spatialboost-quickstart",
        "SpatialBoost end to end, offline, at toy scale (about 12 minutes on 2 CPU cores): the encoder invariants "
        "of every family; synthetic multi-turn data; per seed a tiny DINOv3 base, the three training stages and "
        "frozen-encoder probes of random init, base and boosted; the table, the check of the paper's depth claim "
        "and a report with plots. TINY models: it shows the mechanics and measures honestly.",
        "spatialboost-quickstart --output-dir quickstart-run",
    )
    parser.add_argument("--output-dir", default=None, help="Keep every folder here (default: a temp dir).")
    parser.add_argument("--steps", type=int, default=5, help="Part 1: optimizer steps on the stand-in objective.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Training seeds (base and stages).")
    parser.add_argument("--num-samples", type=int, default=64, help="Synthetic scenes for the multi-turn data.")
    parser.add_argument("--stage-steps", type=int, nargs=3, default=[20, 200, 100], help="max_steps of stages 1-3.")
    parser.add_argument("--pretrain-steps", type=int, default=300, help="Base pre-training on category (0: none).")
    parser.add_argument("--pretrain-scenes", type=int, default=256, help="Scenes of the base pre-training.")
    parser.add_argument("--probe-train", type=int, default=96, help="Scenes the probes are fitted on.")
    parser.add_argument("--probe-test", type=int, default=48, help="Held-out scenes the probes are scored on.")
    parser.add_argument("--image-size", type=int, default=96, help="Encoder input side (multiple of 16).")
    parser.add_argument("--skip-training", action="store_true", help="Only part 1 (the encoder invariants).")
    return parser


def _check_quickstart(args: argparse.Namespace) -> argparse.Namespace:
    if args.image_size % 16 or args.image_size < 16:
        raise ValueError(f"--image-size must be a positive multiple of 16, got {args.image_size}")
    for flag in ("steps", "num_samples", "probe_train", "probe_test", "pretrain_scenes"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if min(args.stage_steps) < 1 or args.pretrain_steps < 0:
        raise ValueError("--stage-steps must be at least 1 each and --pretrain-steps at least 0")
    return args


def quickstart(argv: list[str] | None = None) -> None:
    """`spatialboost-quickstart`."""

    def run(args) -> None:
        from .quickstart import run_quickstart

        run_quickstart(args)

    run_command(quickstart_parser(), run, argv, _check_quickstart)


def compare_parser() -> CommandParser:
    parser = CommandParser(
        "spatialboost-compare",
        "Compare encoders with frozen-encoder probes on the same splits (depth: RMSE, AbsRel, δ1-δ3; segmentation "
        "mIoU; category kNN and linear top-1) and write report.md with the table and plots.",
        "spatialboost-compare --encoder base=tiny-spatialboost/encoder --encoder boosted=tiny-spatialboost/"
        "encoder-spatialboost --data rgbd --rgbd-dir ../shared/data/rgbd/redwood",
    )
    parser.add_argument(
        "--encoder",
        action="append",
        required=True,
        metavar="NAME=PATH_OR_ID",
        help="An encoder to compare (repeat): folder or Hub id of a base or boosted encoder, or of a VLM.",
    )
    parser.add_argument("--revision", default=None, help="Revision of Hub encoders (pin a commit).")
    parser.add_argument("--data", choices=["synthetic", "rgbd", "hub"], default="synthetic", help="Probe data.")
    parser.add_argument("--train-scenes", type=int, default=96, help="synthetic: probe-training scenes.")
    parser.add_argument("--test-scenes", type=int, default=32, help="synthetic: probe-test scenes.")
    parser.add_argument("--scene-seed", type=int, default=100_000, help="synthetic: first scene seed.")
    parser.add_argument(
        "--image-size", type=int, nargs=2, default=[128, 96], metavar=("WIDTH", "HEIGHT"), help="synthetic: size."
    )
    parser.add_argument("--rgbd-dir", default=None, help="rgbd: folder with color/ and depth/ (required).")
    parser.add_argument("--depth-scale", type=float, default=1000.0, help="rgbd/hub: raw depth units per metre.")
    parser.add_argument("--dataset-name", default=None, help="hub: dataset id (required).")
    parser.add_argument("--dataset-split", default="validation", help="hub: split.")
    parser.add_argument("--dataset-revision", default=None, help="hub: revision (pin a commit).")
    parser.add_argument("--image-column", default="image", help="hub: image column.")
    parser.add_argument("--depth-column", default=None, help="hub: depth column (NYUv2 copies: depth_map).")
    parser.add_argument("--mask-column", default=None, help="hub: semantic mask column (class ids).")
    parser.add_argument("--mask-offset", type=int, default=0, help="hub: added to mask ids (ADE20K: -1).")
    parser.add_argument("--label-column", default=None, help="hub: integer image-level label column.")
    parser.add_argument("--num-rows", type=int, default=None, help="rgbd/hub: read only the first N frames.")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="rgbd/hub: share of frames scored.")
    parser.add_argument("--output-dir", default="spatialboost-probe-report", help="Folder of the report.")
    return parser


def looks_like_a_path(text: str) -> bool:
    """Whether `text` can only be a local path (a Hub id is `name` or `namespace/name`)."""
    return text.startswith((".", "~", os.sep)) or text.count("/") > 1 or "\\" in text


def _check_compare(args: argparse.Namespace) -> argparse.Namespace:
    encoders = {}
    for spec in args.encoder:
        name, separator, location = spec.partition("=")
        if not separator or not name or not location:
            raise ValueError(f"--encoder {spec}: expected NAME=PATH_OR_ID, e.g. base=./dinov3-base")
        if name in encoders:
            raise ValueError(f"--encoder {spec}: the name {name!r} is given twice")
        if (looks_like_a_path(location) or Path(location).expanduser().exists()) and not Path(
            location
        ).expanduser().is_dir():
            raise ValueError(f"--encoder {spec}: no such folder {location}")
        encoders[name] = location
    args.encoders = encoders
    if args.data == "rgbd":
        if args.rgbd_dir is None:
            raise ValueError("--rgbd-dir is required with --data rgbd")
        if not Path(args.rgbd_dir).expanduser().is_dir():
            raise ValueError(f"--rgbd-dir {args.rgbd_dir}: no such folder")
    if args.data == "hub":
        if args.dataset_name is None:
            raise ValueError("--dataset-name is required with --data hub")
        if args.depth_column is None and args.mask_column is None and args.label_column is None:
            raise ValueError("--data hub needs at least one of --depth-column, --mask-column, --label-column")
    if not 0.0 < args.test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be in (0, 1), got {args.test_fraction}")
    return args


def compare(argv: list[str] | None = None) -> None:
    """`spatialboost-compare`."""

    def run(args) -> None:
        from .compare import run_compare

        run_compare(args)

    run_command(compare_parser(), run, argv, _check_compare)


# Recipes -----------------------------------------------------------------------------------------------------------


def run_recipe(main: Callable, arguments: tuple[type, ...], argv: list[str] | None = None) -> None:
    """A recipe's `__main__`: TRL's parser (`--config file.yaml` and overrides), then `main`; an error is one line
    (exit status 1; `--debug` shows the traceback), a usage error argparse's message (exit status 2)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [item for item in argv if item != "--debug"]
    from trl import TrlParser

    prog = Path(sys.argv[0]).name
    try:
        parsed = TrlParser(arguments).parse_args_and_config(args=argv)
        main(*parsed)
    except Exception as error:
        if debug:
            raise
        hint = "" if isinstance(error, EXPECTED_ERRORS) else f" ({type(error).__name__}; --debug shows the traceback)"
        raise SystemExit(f"{prog}: error: {one_line(error)}{hint}") from None
