"""transformers' own common model tests on the SpatialBoost encoders, with the upstream classes as the control.

`ModelTesterMixin`, `ConfigTester` and `BackboneTesterMixin` come from the source release of the installed
transformers version, fetched at test time with `pip download transformers==<version> --no-binary :all: --no-deps`
and extracted once under `~/.cache/spatialboost/transformers-src/<version>` (`SPATIALBOOST_CACHE` moves
`~/.cache/spatialboost`). The module skips, saying why, only when pip cannot fetch the release.

The release does not ship everything transformers' own test tree has:

- no `tests/models/`: the model testers for DINOv3 ViT, SigLIP and SigLIP2 are not in it, so this file has its own
  (`Dinov3Tester`, `SiglipTester`, `Siglip2Tester`), built like upstream's (same tiny-config fields and inputs) and
  taking the configuration class to test as an argument;
- no `tests/utils/test_configuration_utils.py`, `tests/generation/test_utils.py` or `tests/exporters/test_export.py`,
  which `test_configuration_common.py` and `test_modeling_common.py` import: the first gives `ConfigTester` the
  common `PreTrainedConfig` keyword arguments (`CONFIG_COMMON_KWARGS` below); the other two give mixins that an
  encoder does not use (`GenerationTesterMixin`: no `generate`; `ExportTesterMixin`: its `torch.export` tests are
  not run here). Each missing module is replaced by a stub with only those names, and only when the release lacks
  the file.

The release's `tests/` is imported as the package `transformers_release_tests` (its modules import each other
relatively), so nothing is added to `sys.path` and no `tests` package of another project can shadow it.

Each family runs twice with the same tester and the same skips: once on the upstream classes (the control) and once
on the SpatialBoost classes. Skips that only the SpatialBoost classes have are in `SPATIALBOOST_ONLY_SKIPS`, each with
its reason. Run with

    python -m pytest tests/test_transformers_common.py -rs

Needs `parameterized` (the `test` extra), which `test_modeling_common.py` imports.
"""

import importlib
import os
import subprocess
import sys
import tarfile
import tempfile
import types
import unittest
from pathlib import Path

import pytest
import torch
import transformers
from torch import nn
from transformers import (
    DINOv3ViTBackbone,
    DINOv3ViTConfig,
    DINOv3ViTModel,
    Siglip2VisionConfig,
    Siglip2VisionModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)
from transformers.testing_utils import torch_device

from modeling_spatialboost import (
    SpatialBoostDinov3ViTBackbone,
    SpatialBoostDinov3ViTConfig,
    SpatialBoostDinov3ViTModel,
    SpatialBoostSiglip2VisionConfig,
    SpatialBoostSiglip2VisionModel,
    SpatialBoostSiglipVisionConfig,
    SpatialBoostSiglipVisionModel,
)


pytestmark = pytest.mark.slow

pytest.importorskip(
    "parameterized", reason="transformers' test_modeling_common.py imports parameterized: pip install -e '.[test]'"
)

VERSION = transformers.__version__
CACHE = Path(os.environ.get("SPATIALBOOST_CACHE", "~/.cache/spatialboost")).expanduser() / "transformers-src" / VERSION
PACKAGE = "transformers_release_tests"

# What `tests/utils/test_configuration_utils.py` gives `ConfigTester.check_config_arguments_init`: keyword arguments
# that every `PreTrainedConfig` takes, with values other than their defaults.
CONFIG_COMMON_KWARGS = {
    "return_dict": False,
    "output_hidden_states": True,
    "output_attentions": True,
    "dtype": "float16",
    "chunk_size_feed_forward": 5,
    "architectures": ["BertModel"],
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "problem_type": "regression",
}


def fetch_release_tests() -> Path:
    """The `tests/` folder of the installed transformers version's source release, downloaded and extracted once."""
    tests_dir = CACHE / "tests"
    if tests_dir.is_dir():
        return tests_dir
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE.parent) as work:
        command = [sys.executable, "-m", "pip", "download", f"transformers=={VERSION}"]
        command += ["--no-binary", ":all:", "--no-deps", "--quiet", "-d", work]
        result = subprocess.run(command, capture_output=True, text=True)
        archives = list(Path(work).glob("transformers-*.tar.gz"))
        if result.returncode != 0 or not archives:
            pytest.skip(
                f"pip could not fetch the transformers {VERSION} source release: {result.stderr.strip()[-500:]}",
                allow_module_level=True,
            )
        extracted = Path(work) / "extracted"
        with tarfile.open(archives[0]) as archive:
            members = [member for member in archive.getmembers() if member.name.split("/")[1:2] == ["tests"]]
            archive.extractall(extracted, members=members, filter="data")
        release_tests = extracted / f"transformers-{VERSION}" / "tests"
        # transformers' tree has an empty `tests/__init__.py` that the release leaves out; `test_configuration_common`
        # loads it (through `direct_transformers_import`).
        (release_tests / "__init__.py").touch()
        # Renamed into place in one step: a run that stops half-way leaves no half-extracted cache behind.
        CACHE.mkdir(exist_ok=True)
        release_tests.rename(tests_dir)
    return tests_dir


def import_release_tests(tests_dir: Path) -> types.ModuleType:
    """Imports the release's `tests/` as the package `PACKAGE`, stubbing the modules that the release lacks."""
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(tests_dir)]
    sys.modules[PACKAGE] = package
    stubs = {
        "utils.test_configuration_utils": {"config_common_kwargs": CONFIG_COMMON_KWARGS},
        "generation.test_utils": {"GenerationTesterMixin": type("GenerationTesterMixin", (), {})},
        "exporters.test_export": {"ExportTesterMixin": type("ExportTesterMixin", (), {})},
    }
    for name, attributes in stubs.items():
        if (tests_dir / f"{name.replace('.', '/')}.py").exists():
            continue
        parent = f"{PACKAGE}.{name.split('.')[0]}"
        if parent not in sys.modules:
            sys.modules[parent] = types.ModuleType(parent)
            sys.modules[parent].__path__ = []
        module = types.ModuleType(f"{PACKAGE}.{name}")
        module.__dict__.update(attributes)
        sys.modules[module.__name__] = module
    return package


import_release_tests(fetch_release_tests())
test_modeling_common = importlib.import_module(f"{PACKAGE}.test_modeling_common")
test_configuration_common = importlib.import_module(f"{PACKAGE}.test_configuration_common")
test_backbone_common = importlib.import_module(f"{PACKAGE}.test_backbone_common")
ModelTesterMixin = test_modeling_common.ModelTesterMixin
ConfigTester = test_configuration_common.ConfigTester
BackboneTesterMixin = test_backbone_common.BackboneTesterMixin
floats_tensor = test_modeling_common.floats_tensor


# ---------------------------------------------------------------------------------------------------------------------
# Model testers: tiny configurations and inputs, as upstream's testers build them, for any configuration class of the
# family (the upstream one or the SpatialBoost one).


class EncoderTester:
    """Fields shared by the three families' testers (upstream's defaults, smaller batch and image)."""

    def __init__(self, parent, config_class, batch_size=3, patch_size=2, num_channels=3, is_training=True):
        self.parent = parent
        self.config_class = config_class
        self.batch_size = batch_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.is_training = is_training
        self.hidden_size = 32
        self.num_hidden_layers = 2
        self.num_attention_heads = 4
        self.intermediate_size = 37
        self.initializer_range = 0.02

    def common_config_kwargs(self) -> dict:
        return {
            "patch_size": self.patch_size,
            "num_channels": self.num_channels,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "initializer_range": self.initializer_range,
        }

    def prepare_config_and_inputs_for_common(self):
        config, *inputs = self.prepare_config_and_inputs()
        return config, dict(zip(self.input_names, inputs, strict=True))


class VisionSuite(ModelTesterMixin):
    """What upstream's vision test cases of all three families override in `ModelTesterMixin`."""

    def test_model_get_set_embeddings(self):
        # The input embedding is a patch projection (Conv2d or Linear), not an `nn.Embedding`.
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            self.assertIsInstance(model.get_input_embeddings(), nn.Module)
            output_embeddings = model.get_output_embeddings()
            self.assertTrue(output_embeddings is None or isinstance(output_embeddings, nn.Linear))


class Dinov3Tester(EncoderTester):
    """DINOv3 ViT: an image of 8 × 8 pixels in patches of 2, CLS and 2 register tokens; backbone stages as upstream."""

    input_names = ("pixel_values",)

    def __init__(self, parent, config_class, image_size=8, num_register_tokens=2):
        super().__init__(parent, config_class, is_training=False)
        self.image_size = image_size
        self.num_register_tokens = num_register_tokens
        num_patches = (image_size // self.patch_size) ** 2
        self.seq_length = num_patches + 1 + num_register_tokens
        # `bool_masked_pos` for the eager/SDPA comparison, as upstream's tester sizes it.
        self.num_masks = int(0.5 * self.seq_length)
        self.mask_length = num_patches

    def get_config(self):
        return self.config_class(
            **self.common_config_kwargs(),
            image_size=self.image_size,
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
            num_register_tokens=self.num_register_tokens,
            out_indices=[0, 1],
            reshape_hidden_states=True,
        )

    def prepare_config_and_inputs(self):
        pixel_values = floats_tensor([self.batch_size, self.num_channels, self.image_size, self.image_size])
        return self.get_config(), pixel_values


class SiglipTester(EncoderTester):
    """SigLIP (and SigLIP2 FixRes) vision tower: an image of 8 × 8 pixels in patches of 2."""

    input_names = ("pixel_values",)

    def __init__(self, parent, config_class, image_size=8):
        super().__init__(parent, config_class)
        self.image_size = image_size
        self.seq_length = (image_size // self.patch_size) ** 2

    def get_config(self):
        return self.config_class(
            **self.common_config_kwargs(), image_size=self.image_size, dropout=0.1, attention_dropout=0.1
        )

    def prepare_config_and_inputs(self):
        pixel_values = floats_tensor([self.batch_size, self.num_channels, self.image_size, self.image_size])
        return self.get_config(), pixel_values


class Siglip2Tester(EncoderTester):
    """SigLIP2 NaFlex: 12 patch slots per image, each image a different grid (1 × 1, 1 × 2, ...), the rest padding."""

    input_names = ("pixel_values", "pixel_attention_mask", "spatial_shapes")

    def __init__(self, parent, config_class, num_patches=16, seq_length=12):
        super().__init__(parent, config_class)
        self.num_patches = num_patches
        self.seq_length = seq_length

    def get_config(self):
        return self.config_class(
            **self.common_config_kwargs(), num_patches=self.num_patches, dropout=0.1, attention_dropout=0.1
        )

    def prepare_config_and_inputs(self):
        patch_dim = self.num_channels * self.patch_size**2
        pixel_values = floats_tensor([self.batch_size, self.seq_length, patch_dim])
        grids = [
            (h, w) for h in range(1, self.seq_length) for w in range(1, self.seq_length) if h * w <= self.seq_length
        ]
        spatial_shapes = torch.tensor(grids[: self.batch_size], device=torch_device, dtype=torch.long)
        pixel_attention_mask = torch.zeros(self.batch_size, self.seq_length, device=torch_device, dtype=torch.long)
        for index, (height, width) in enumerate(spatial_shapes.tolist()):
            pixel_attention_mask[index, : height * width] = 1
        return self.get_config(), pixel_values, pixel_attention_mask, spatial_shapes


# ---------------------------------------------------------------------------------------------------------------------
# The suites. Each family's suite holds upstream's settings and skips for that family; the control and SpatialBoost
# test cases differ only in their classes (and the SpatialBoost-only skips).

# Tests that the SpatialBoost classes skip and the upstream classes do not, with the reason, by family.
NOT_A_BASE_MODEL_NAME = (
    "the common test leaves out base models by class name (transformers' MODEL_MAPPING_NAMES: the upstream class is "
    "there and silently passes); a SpatialBoost class is not in it, so the test runs and asks a base vision model, "
    "which has no head, for a loss. Upstream's own skips of the other gradient-checkpointing variants say the same: "
    "the vision model does not support standalone training"
)
SPATIALBOOST_ONLY_SKIPS: dict[str, dict[str, str]] = {
    "dinov3": {},
    "dinov3_backbone": {},
    "siglip": {"test_training_gradient_checkpointing_use_reentrant_true": NOT_A_BASE_MODEL_NAME},
    "siglip2": {"test_training_gradient_checkpointing_use_reentrant_true": NOT_A_BASE_MODEL_NAME},
}


def skip_spatialboost_only(family: str):
    """Adds the family's `SPATIALBOOST_ONLY_SKIPS` to a SpatialBoost test case."""

    def decorate(cls: type) -> type:
        for name, reason in SPATIALBOOST_ONLY_SKIPS[family].items():
            setattr(cls, name, unittest.skip(reason=f"SpatialBoost only: {reason}")(lambda self: None))
        return cls

    return decorate


class Dinov3Suite(VisionSuite):
    config_class: type
    test_resize_embeddings = False  # upstream: as DINOv3ViTModelTest
    test_attention_outputs = False  # upstream: as DINOv3ViTModelTest

    def setUp(self):
        self.model_tester = Dinov3Tester(self, self.config_class)
        self.config_tester = ConfigTester(
            self, config_class=self.config_class, has_text_modality=False, hidden_size=37
        )

    def test_config(self):
        self.config_tester.run_common_tests()

    @unittest.skip(reason="upstream: DINOv3 does not use inputs_embeds")
    def test_inputs_embeds(self):
        pass

    @unittest.skip(reason="upstream: DINOv3 does not support feedforward chunking yet")
    def test_feed_forward_chunking(self):
        pass

    @unittest.skip(reason="upstream: gradients not computed properly with GC (transformers PR 27124)")
    def test_training_gradient_checkpointing(self):
        pass

    @unittest.skip(reason="upstream: gradients not computed properly with GC (transformers PR 27124)")
    def test_training_gradient_checkpointing_use_reentrant(self):
        pass

    @unittest.skip(reason="upstream: gradients not computed properly with GC (transformers PR 27124)")
    def test_training_gradient_checkpointing_use_reentrant_false(self):
        pass

    def test_model(self):
        config, pixel_values = self.model_tester.prepare_config_and_inputs()
        model = self.all_model_classes[0](config).to(torch_device).eval()
        with torch.no_grad():
            result = model(pixel_values)
        expected = (self.model_tester.batch_size, self.model_tester.seq_length, self.model_tester.hidden_size)
        self.assertEqual(result.last_hidden_state.shape, expected)


class SiglipFamilySuite(VisionSuite):
    """Upstream's settings and skips of `SiglipVisionModelTest` and `Siglip2VisionModelTest`."""

    config_class: type
    model_tester_class: type
    test_resize_embeddings = False
    # Upstream: MP works but offload does not when the MultiheadAttention pooling head is offloaded.
    test_cpu_offload = False
    test_disk_offload_safetensors = False
    test_disk_offload_bin = False

    def setUp(self):
        self.model_tester = self.model_tester_class(self, self.config_class)
        self.config_tester = ConfigTester(
            self, config_class=self.config_class, has_text_modality=False, hidden_size=37
        )

    def test_config(self):
        self.config_tester.run_common_tests()

    @unittest.skip(reason="upstream: SigLIP does not use inputs_embeds")
    def test_inputs_embeds(self):
        pass

    @unittest.skip(reason="upstream: the vision model does not support standalone training")
    def test_training(self):
        pass

    @unittest.skip(reason="upstream: the vision model does not support standalone training")
    def test_training_gradient_checkpointing(self):
        pass

    @unittest.skip(reason="upstream: the vision model does not support standalone training")
    def test_training_gradient_checkpointing_use_reentrant(self):
        pass

    @unittest.skip(reason="upstream: the vision model does not support standalone training")
    def test_training_gradient_checkpointing_use_reentrant_false(self):
        pass

    @unittest.skip(reason="upstream: SigLIP uses the initialization scheme of the Flax original")
    def test_initialization(self):
        pass

    def test_model(self):
        config, *inputs = self.model_tester.prepare_config_and_inputs()
        model = self.all_model_classes[0](config).to(torch_device).eval()
        with torch.no_grad():
            result = model(*inputs)
        expected = (self.model_tester.batch_size, self.model_tester.seq_length, self.model_tester.hidden_size)
        self.assertEqual(result.last_hidden_state.shape, expected)
        self.assertEqual(result.pooler_output.shape, (self.model_tester.batch_size, self.model_tester.hidden_size))


class Dinov3BackboneSuite(BackboneTesterMixin):
    has_attentions = False  # upstream: as the DINOv3 backbone test

    def setUp(self):
        self.model_tester = Dinov3Tester(self, self.config_class)


class TestDinov3Upstream(Dinov3Suite, unittest.TestCase):
    all_model_classes = (DINOv3ViTModel, DINOv3ViTBackbone)
    config_class = DINOv3ViTConfig


@skip_spatialboost_only("dinov3")
class TestDinov3SpatialBoost(Dinov3Suite, unittest.TestCase):
    all_model_classes = (SpatialBoostDinov3ViTModel, SpatialBoostDinov3ViTBackbone)
    config_class = SpatialBoostDinov3ViTConfig


class TestDinov3BackboneUpstream(Dinov3BackboneSuite, unittest.TestCase):
    all_model_classes = (DINOv3ViTBackbone,)
    config_class = DINOv3ViTConfig


@skip_spatialboost_only("dinov3_backbone")
class TestDinov3BackboneSpatialBoost(Dinov3BackboneSuite, unittest.TestCase):
    all_model_classes = (SpatialBoostDinov3ViTBackbone,)
    config_class = SpatialBoostDinov3ViTConfig


class TestSiglipUpstream(SiglipFamilySuite, unittest.TestCase):
    all_model_classes = (SiglipVisionModel,)
    config_class = SiglipVisionConfig
    model_tester_class = SiglipTester


@skip_spatialboost_only("siglip")
class TestSiglipSpatialBoost(SiglipFamilySuite, unittest.TestCase):
    all_model_classes = (SpatialBoostSiglipVisionModel,)
    config_class = SpatialBoostSiglipVisionConfig
    model_tester_class = SiglipTester


def skip_eager_matches_sdpa(cls: type) -> type:
    """Skips every parametrisation of `test_eager_matches_sdpa_inference` for SigLIP2 NaFlex, control included.

    The common test calls the model with `pixel_values` alone; a NaFlex model also needs `pixel_attention_mask` and
    `spatial_shapes` (upstream's SigLIP2 test case replaces the test with its own for this reason).
    """
    reason = "upstream: SigLIP2 NaFlex needs pixel_attention_mask and spatial_shapes, which this test does not pass"
    for name in dir(cls):
        if name.startswith("test_eager_matches_sdpa_inference"):
            setattr(cls, name, unittest.skip(reason=reason)(lambda self: None))
    return cls


@skip_eager_matches_sdpa
class TestSiglip2Upstream(SiglipFamilySuite, unittest.TestCase):
    all_model_classes = (Siglip2VisionModel,)
    config_class = Siglip2VisionConfig
    model_tester_class = Siglip2Tester


@skip_eager_matches_sdpa
@skip_spatialboost_only("siglip2")
class TestSiglip2SpatialBoost(SiglipFamilySuite, unittest.TestCase):
    all_model_classes = (SpatialBoostSiglip2VisionModel,)
    config_class = SpatialBoostSiglip2VisionConfig
    model_tester_class = Siglip2Tester
