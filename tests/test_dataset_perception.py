"""Perception backends with tiny random-weight transformers models built in code (loading, batching, post-processing).

Random weights say nothing about depth; so the heads' last layers are set to constants, which makes the expected
output known in closed form, and the wrappers' loading, batching, resizing and focal-length handling are checked
against it. The model-free depth segmenter is checked against synthetic ground-truth masks.
"""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    BartTokenizer,
    BertTokenizer,
    CLIPImageProcessor,
    CLIPTokenizer,
    DepthAnythingConfig,
    DepthAnythingForDepthEstimation,
    DepthProConfig,
    DepthProForDepthEstimation,
    DepthProImageProcessor,
    Dinov2Config,
    DPTImageProcessor,
    Florence2Config,
    Florence2ForConditionalGeneration,
    Florence2Processor,
    GroundingDinoConfig,
    GroundingDinoForObjectDetection,
    GroundingDinoImageProcessor,
    GroundingDinoProcessor,
    Sam2Config,
    Sam2ImageProcessor,
    Sam2Model,
    Sam2Processor,
    Sam3Config,
    Sam3ImageProcessor,
    Sam3Model,
    Sam3Processor,
    SwinConfig,
)

from dataset_builders.frames import Frame, Instance
from dataset_builders.multiturn import MultiturnArguments, build, build_example, make_perception
from dataset_builders.perception import (
    BackendUnavailableError,
    DepthAnythingEstimator,
    DepthClusterSegmenter,
    DepthProEstimator,
    Florence2Captioner,
    GroundedSam2Segmenter,
    Perception,
    Sam3Segmenter,
    _resolve_overlaps,
    phrase_category,
)
from dataset_builders.sources import SyntheticSource
from dataset_builders.spatial import Thresholds


TINY_VIT = {
    "model_type": "dinov2",
    "num_hidden_layers": 2,
    "hidden_size": 16,
    "num_attention_heads": 1,
    "patch_size": 4,
    "intermediate_size": 32,
}
DEPTH_HEAD_VALUE = 0.25  # inverse-depth units of Depth Pro's head
FOV_DEG = 60.0


def _constant_conv(conv, value):
    torch.nn.init.zeros_(conv.weight)
    torch.nn.init.constant_(conv.bias, value)


@pytest.fixture(scope="module")
def depth_pro_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = DepthProConfig(
        patch_size=16,
        fusion_hidden_size=16,
        intermediate_hook_ids=[1, 0],
        intermediate_feature_dims=[8, 8],
        scaled_images_ratios=[0.5, 1.0],
        scaled_images_overlap_ratios=[0.0, 0.2],
        scaled_images_feature_dims=[8, 8],
        use_fov_model=True,
        image_model_config=TINY_VIT,
        patch_model_config=TINY_VIT,
        fov_model_config=TINY_VIT,
    )
    model = DepthProForDepthEstimation(config)
    _constant_conv(model.head.layers[4], DEPTH_HEAD_VALUE)
    _constant_conv(model.fov_model.head.layers[4], FOV_DEG)
    path = tmp_path_factory.mktemp("depth_pro")
    model.save_pretrained(path)
    DepthProImageProcessor(size={"height": 64, "width": 64}).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def depth_anything_dir(tmp_path_factory):
    torch.manual_seed(0)
    backbone = Dinov2Config(
        image_size=28,
        patch_size=14,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        out_features=["stage1", "stage2"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        neck_hidden_sizes=[8, 16],
        fusion_hidden_size=16,
        head_hidden_size=8,
        depth_estimation_type="metric",
        max_depth=20,
        reassemble_factors=[2, 1],
    )
    model = DepthAnythingForDepthEstimation(config)
    _constant_conv(model.head.conv3, 0.0)  # sigmoid(0) * max_depth = 10 m everywhere
    path = tmp_path_factory.mktemp("depth_anything")
    model.save_pretrained(path)
    DPTImageProcessor(
        size={"height": 28, "width": 28}, keep_aspect_ratio=False, ensure_multiple_of=14
    ).save_pretrained(path)
    return str(path)


IMAGES = [Image.new("RGB", (80, 60), (120, 60, 30)), Image.new("RGB", (50, 70), (20, 200, 90))]


def test_depth_pro_loads_batches_and_post_processes(depth_pro_dir):
    estimator = DepthProEstimator(depth_pro_dir)
    batch = estimator(IMAGES)
    for image, prediction in zip(IMAGES, batch, strict=True):
        width, height = image.size
        focal = 0.5 * width / math.tan(math.radians(FOV_DEG / 2))
        assert prediction.depth.shape == (height, width)
        assert prediction.focal_px == pytest.approx(focal, rel=1e-5)
        # Depth Pro: inverse depth = head * width / focal, so depth = focal / (head * width).
        np.testing.assert_allclose(prediction.depth, focal / (DEPTH_HEAD_VALUE * width), rtol=1e-4)
    single = estimator(IMAGES[1:])[0]
    np.testing.assert_allclose(single.depth, batch[1].depth, rtol=1e-5)


def test_depth_pro_intrinsics_prefer_exif_and_rescale_depth(depth_pro_dir):
    perception = Perception(depth=DepthProEstimator(depth_pro_dir))
    width, height = IMAGES[0].size
    predicted_focal = 0.5 * width / math.tan(math.radians(FOV_DEG / 2))
    plain = Frame("a", "image_folder", IMAGES[0])
    with_exif = Frame("b", "image_folder", IMAGES[0], exif_focal_px=2 * predicted_focal)
    perception.complete([plain, with_exif])
    assert plain.intrinsics_origin == depth_pro_dir and plain.intrinsics.fx == pytest.approx(predicted_focal)
    assert (plain.intrinsics.cx, plain.intrinsics.cy) == ((width - 1) / 2, (height - 1) / 2)
    assert with_exif.intrinsics_origin == "exif" and with_exif.intrinsics.fx == 2 * predicted_focal
    np.testing.assert_allclose(with_exif.depth, 2 * plain.depth, rtol=1e-5)
    assert plain.depth_origin == depth_pro_dir and plain.metric_depth
    assert plain.backends == [{"role": "depth", "model_id": depth_pro_dir, "revision": "main"}]


def test_depth_anything_metric_loads_and_falls_back_to_default_intrinsics(depth_anything_dir):
    estimator = DepthAnythingEstimator(depth_anything_dir)
    predictions = estimator(IMAGES)
    for image, prediction in zip(IMAGES, predictions, strict=True):
        assert prediction.depth.shape == image.size[::-1] and prediction.focal_px is None
        np.testing.assert_allclose(prediction.depth, 10.0, rtol=1e-5)
    frame = Frame("c", "hub", IMAGES[0])
    Perception(depth=estimator).complete([frame])
    assert frame.intrinsics_origin == "default"
    assert frame.intrinsics.fx == pytest.approx(0.5 * 80 / math.tan(math.radians(30)))


def test_depth_anything_relative_checkpoints_are_refused(depth_anything_dir, tmp_path):
    model = DepthAnythingForDepthEstimation.from_pretrained(depth_anything_dir)
    model.config.depth_estimation_type = "relative"
    model.save_pretrained(tmp_path)
    DPTImageProcessor.from_pretrained(depth_anything_dir).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="metric"):
        DepthAnythingEstimator(str(tmp_path))


def test_depth_cluster_segments_match_synthetic_masks_and_are_never_the_room():
    source = SyntheticSource(seed=12, num_samples=6)
    matched, segments = 0, 0
    for index in range(6):
        frame = source.load(index)
        truth = frame.instances
        found = DepthClusterSegmenter()([frame])[0]
        assert all(inst.category == "region" for inst in found)
        for inst in found:
            segments += 1
            ious = [(inst.mask & t.mask).sum() / (inst.mask | t.mask).sum() for t in truth]
            matched += max(ious, default=0) >= 0.7
            # Floor, walls and ceiling (no instance) never make up most of a region.
            on_objects = np.any([t.mask for t in truth], axis=0) if truth else np.zeros_like(inst.mask)
            assert (inst.mask & on_objects).sum() > 0.5 * inst.mask.sum()
    # Most depth segments are one true object each (objects that touch or stand on others merge).
    assert segments >= 12 and matched / segments >= 0.6
    assert DepthClusterSegmenter(label="object")([source.load(0)])[0][0].category == "object"


def test_missing_segmenter_weights_name_the_model_and_how_to_pass_masks(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = str(tmp_path / "no-such-sam3")
    with pytest.raises(BackendUnavailableError) as info:
        Sam3Segmenter(missing, ["chair"])
    message = str(info.value)
    assert missing in message and "--rgbd-layout annotated" in message and "depth_clusters" in message
    # Sources with masks of their own build no segmenter at all, so missing weights do not matter to them.
    args = MultiturnArguments(
        source="rgbd", rgbd_layout="annotated", input_dir=str(tmp_path), segmenter_model=missing, output_dir="x"
    )
    assert make_perception(args).segmenter is None
    with pytest.raises(BackendUnavailableError):
        make_perception(MultiturnArguments(source="rgbd", input_dir=str(tmp_path), segmenter_model=missing))


def _tiny_clip_tokenizer(directory):
    """A character-level CLIP BPE tokenizer written from scratch (no download): letters and end-of-word letters."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"), pad_token="<|endoftext|>")


@pytest.fixture(scope="module")
def sam3_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sam3")
    tokenizer = _tiny_clip_tokenizer(path)
    hidden = 32
    layer = {"hidden_size": hidden, "num_attention_heads": 2, "intermediate_size": 64}
    config = Sam3Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam3_vit_model",
                **layer,
                "num_hidden_layers": 2,
                "image_size": 56,
                "patch_size": 14,
                "window_size": 2,
                "global_attn_indexes": [1],
                "pretrain_image_size": 28,
            },
            "fpn_hidden_size": hidden,
            "backbone_feature_sizes": [[16, 16], [8, 8], [4, 4]],
        },
        text_config={
            "model_type": "clip_text_model",
            **layer,
            "vocab_size": len(tokenizer),
            "projection_dim": hidden,
            "num_hidden_layers": 1,
            "max_position_embeddings": 32,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        geometry_encoder_config={**layer, "num_layers": 1},
        detr_encoder_config={**layer, "num_layers": 1},
        detr_decoder_config={**layer, "num_layers": 1, "num_queries": 8},
        mask_decoder_config={"hidden_size": hidden, "num_attention_heads": 2},
    )
    Sam3Model(config).save_pretrained(path)
    Sam3Processor(Sam3ImageProcessor(size={"height": 56, "width": 56}), tokenizer).save_pretrained(path)
    return str(path)


def test_sam3_segmenter_loads_prompts_and_post_processes(sam3_dir):
    frames = [Frame("a", "hub", IMAGES[0]), Frame("b", "hub", IMAGES[1])]
    segmenter = Sam3Segmenter(sam3_dir, ["chair", "table"], threshold=0.0)
    batch = segmenter(frames)
    assert len(batch) == 2 and all(batch)
    for frame, instances in zip(frames, batch, strict=True):
        claimed = np.zeros(frame.image.size[::-1], dtype=int)
        for instance in instances:
            assert instance.mask.shape == frame.image.size[::-1] and instance.mask.dtype == bool
            assert instance.category in ("chair", "table") and instance.mask.any()
            claimed += instance.mask
        assert claimed.max() == 1  # overlaps resolved: every pixel has at most one owner
        assert [i.score for i in instances] == sorted((i.score for i in instances), reverse=True)
    single = segmenter(frames[1:])[0]
    assert [i.category for i in single] == [i.category for i in batch[1]]
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(single, batch[1], strict=True))
    # Through Perception, frames without instances get them and record the backend.
    frame = Frame("c", "hub", IMAGES[0], depth=np.ones((60, 80), np.float32))
    Perception(segmenter=segmenter).complete([frame])
    assert frame.instances and frame.backends == [{"role": "segmentation", "model_id": sam3_dir, "revision": "main"}]


def test_overlap_resolution_keeps_the_confident_instance():
    a = np.zeros((10, 10), bool)
    a[:5] = True
    b = a.copy()
    b[5] = True  # near-duplicate of `a` (IoU 5/6)
    c = np.zeros((10, 10), bool)
    c[4:8] = True  # overlaps `a` on row 4
    kept = _resolve_overlaps([Instance(b, "desk", 0.6), Instance(a, "table", 0.9), Instance(c, "chair", 0.8)], 0.7)
    assert [k.category for k in kept] == ["table", "chair"]
    assert kept[1].mask[4].sum() == 0 and kept[1].mask[5:8].all()


@pytest.fixture(scope="module")
def florence2_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("florence2")
    # A character-level BART tokenizer written from scratch, with Florence-2's image token.
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for char in "abcdefghijklmnopqrstuvwxyz.,?":
        vocab[char] = len(vocab)
        vocab["\u0120" + char] = len(vocab)  # byte-level BPE marks a leading space with U+0120
    vocab["<image>"] = len(vocab)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = BartTokenizer(
        str(path / "vocab.json"), str(path / "merges.txt"), extra_special_tokens={"image_token": "<image>"}
    )
    image_processor = CLIPImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False)
    image_processor.image_seq_length = 17  # 32 px -> stride 4, 2 -> 4x4 tokens, plus the pooled one
    Florence2Processor(image_processor, tokenizer, post_processor_config={"pure_text": {}}).save_pretrained(path)
    config = Florence2Config(
        vision_config={
            "depths": [1, 1],
            "patch_size": [7, 3],
            "patch_stride": [4, 2],
            "patch_padding": [3, 1],
            "patch_prenorm": [False, True],
            "embed_dim": [8, 16],
            "num_heads": [1, 2],
            "num_groups": [1, 2],
            "window_size": 2,
            "projection_dim": 32,
            "drop_path_rate": 0.0,
        },
        text_config={
            "model_type": "bart",
            "vocab_size": len(tokenizer),
            "d_model": 32,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "decoder_ffn_dim": 64,
            "max_position_embeddings": 128,
            "pad_token_id": 1,
            "bos_token_id": 0,
            "eos_token_id": 2,
            "decoder_start_token_id": 2,
        },
        image_token_id=tokenizer.image_token_id,
    )
    Florence2ForConditionalGeneration(config).save_pretrained(path)
    return str(path)


def test_florence2_captioner_loads_batches_and_decodes(florence2_dir):
    captioner = Florence2Captioner(florence2_dir, max_new_tokens=6, num_beams=1)
    batch = captioner(IMAGES)
    assert len(batch) == 2 and all(len(pair) == 2 for pair in batch)
    for brief, detailed in batch:
        assert isinstance(brief, str) and isinstance(detailed, str)
        assert not any(token in brief + detailed for token in ("<s>", "</s>", "<pad>", "<image>"))
    assert captioner(IMAGES[1:]) == batch[1:]


def test_captions_from_the_captioner_are_used_verbatim_and_empty_ones_replaced():
    source = SyntheticSource(seed=4, num_samples=2)
    frame = source.load(0)
    frame.captions = ("A small room.", "A small room with boxes on a checkered floor.")
    row = build_example(frame, 0, 4, "forward", Thresholds())
    assistant = [m["content"][0]["text"] for m in row["messages"] if m["role"] == "assistant"]
    assert assistant[-2:] == list(frame.captions)
    frame.captions = ("", "")
    row = build_example(frame, 0, 4, "forward", Thresholds())
    assistant = [m["content"][0]["text"] for m in row["messages"] if m["role"] == "assistant"]
    assert assistant[-2].startswith("An indoor scene with") and "From left to right" in assistant[-1]


def test_image_folder_build_runs_every_backend_from_its_model_id(tmp_path, depth_pro_dir, sam3_dir, florence2_dir):
    # Random weights give flat depth and arbitrary masks, so no sample is expected to be built: the point is that
    # the backends load from the ids given on the command line, run batched inside the build, and that what they
    # produce ends as typed, counted skips with the backends recorded.
    images = tmp_path / "images"
    images.mkdir()
    for index, image in enumerate(IMAGES * 2):
        image.save(images / f"{index}.png")
    args = MultiturnArguments(
        source="image_folder",
        input_dir=str(images),
        output_dir=str(tmp_path / "out"),
        depth_model=depth_pro_dir,
        segmenter_model=sam3_dir,
        categories=["chair", "table"],
        captioner_model=florence2_dir,
        caption_max_new_tokens=4,
        batch_size=3,
        min_yield=0.0,
    )
    manifest = build(args)
    assert manifest["attempted"] == 4 and manifest["built"] + sum(manifest["skipped"].values()) == 4
    assert [b["role"] for b in manifest["backends"]] == ["depth", "segmentation", "caption"]
    assert [b["model_id"] for b in manifest["backends"]] == [depth_pro_dir, sam3_dir, florence2_dir]


@pytest.fixture(scope="module")
def grounded_sam2_dirs(tmp_path_factory):
    torch.manual_seed(0)
    detector_dir, segmenter_dir = tmp_path_factory.mktemp("grounding_dino"), tmp_path_factory.mktemp("sam2")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "chair", "table", "dining"]
    (detector_dir / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizer(str(detector_dir / "vocab.txt"))
    config = GroundingDinoConfig(
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=8,
        decoder_ffn_dim=8,
        num_queries=4,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=16,
        backbone_config=SwinConfig(
            window_size=7,
            embed_dim=8,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            image_size=64,
            out_indices=[2, 3, 4],
        ),
        text_config={
            "model_type": "bert",
            "hidden_size": 8,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 8,
            "max_position_embeddings": 16,
            "vocab_size": len(words),
        },
    )
    GroundingDinoForObjectDetection(config).save_pretrained(detector_dir)
    GroundingDinoProcessor(
        GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 64}), tokenizer
    ).save_pretrained(detector_dir)
    config = Sam2Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam2_hiera_det_model",
                "hidden_size": 8,
                "image_size": [64, 64],
                "embed_dim_per_stage": [8, 16, 32, 64],
                "num_attention_heads_per_stage": [1, 1, 1, 1],
                "blocks_per_stage": [1, 1, 2, 1],
                "window_size_per_stage": [2, 2, 2, 2],
                "global_attention_blocks": [3],
                "window_positional_embedding_background_size": [2, 2],
            },
            "backbone_channel_list": [64, 32, 16, 8],
            "backbone_feature_sizes": [[16, 16], [8, 8], [4, 4]],
            "fpn_hidden_size": 32,
        },
        prompt_encoder_config={"hidden_size": 32, "image_size": 64, "patch_size": 16},
        mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
    )
    Sam2Model(config).save_pretrained(segmenter_dir)
    Sam2Processor(
        Sam2ImageProcessor(size={"height": 64, "width": 64}, mask_size={"height": 16, "width": 16})
    ).save_pretrained(segmenter_dir)
    return str(detector_dir), str(segmenter_dir)


def test_grounding_dino_boxes_become_sam2_masks(grounded_sam2_dirs):
    detector_dir, segmenter_dir = grounded_sam2_dirs
    # One category, so every detected phrase names it whatever the random token scores are.
    segmenter = GroundedSam2Segmenter(detector_dir, segmenter_dir, ["chair"], box_threshold=0.0, text_threshold=0.0)
    frames = [Frame("a", "hub", IMAGES[0]), Frame("b", "hub", IMAGES[1])]
    batch = segmenter(frames)
    assert len(batch) == 2 and all(batch)
    for frame, instances in zip(frames, batch, strict=True):
        claimed = np.zeros(frame.image.size[::-1], dtype=int)
        for instance in instances:
            assert instance.category == "chair" and instance.mask.shape == frame.image.size[::-1]
            claimed += instance.mask
        assert claimed.max() == 1
    assert segmenter.model_id == f"{detector_dir} + {segmenter_dir}"


def test_grounding_phrases_map_to_one_category():
    categories = ["table", "dining table", "chair"]
    assert phrase_category("dining table", categories) == "dining table"
    assert phrase_category("table", categories) == "table"
    assert phrase_category("chair .", categories) == "chair"
    assert phrase_category("chair table", categories) is None
    assert phrase_category("lamp", categories) is None
