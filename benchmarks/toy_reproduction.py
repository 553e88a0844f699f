"""Toy reproduction of SpatialBoost's claim: stage 3 (only `Attn⁺` and `a` trained, through a frozen LM's answer loss)
makes the encoder more 3D-aware, while full fine-tuning and LoRA with the same loss are the forgetting controls.

Everything is built from scratch at toy size, in one process, with the package's real classes:
`SpatialBoostDinov3ViTModel.from_base` (the dual-channel encoder), `SpatialBoostVLMForConditionalGeneration` (encoder
-> projector -> Qwen2 LM, upstream LLaVA loss), `spatialboost.probes` (depth and category probes) and the procedural
rooms of `dataset_builders.scenes` (exact metric depth).

    base encoder   tiny DINOv3 ViT (random init), pre-trained on the main object's category: an ability to keep
    stage 1        projector only, LM and encoder frozen
    stage 2        projector + LM, encoder frozen: the LM learns to read the image
    stage 3        `Attn⁺` and `a` only, LM and projector frozen: the answer loss reaches the encoder
    controls       (a) oracle: `Attn⁺` and `a` on a direct depth loss (a linear head on the patch features);
                   (b) full fine-tuning of the encoder with the stage-3 loss; (c) LoRA (peft) on the encoder's
                   attention projections with the stage-3 loss. Same scenes, steps and batch as stage 3.
    probes         linear depth probe (AbsRel) on patch features, category kNN / linear on the pooled output,
                   fitted and scored on held-out scenes that no stage trained on.

The conversation: the image, then one question per patch region. The LM is asked the depth of region (row, col) of
the 6 x 6 patch grid ("depth r2 c4 ?") and answers with one of 16 log-spaced depth bins; then which of two regions is
closer, and which of two is further left in the scene's 3D frame. The regions are drawn so that the text gives the
answer away as little as possible (for "closer", pairs in the same image row or with the upper region closer are as
likely as the rest). The text-only baselines are measured on the same held-out questions: per-region mean depth
(coordinates only), "the lower region is closer", "the region further left in the image is left".

Run: `python benchmarks/toy_reproduction.py` (one seed with all five variants took 74 minutes on 2 shared CPU cores;
`--quick` for a smoke run). Writes
`toy-reproduction/report.md` and `summary.json` and prints a JSON line last.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from transformers import DINOv3ViTConfig, DINOv3ViTImageProcessor, DINOv3ViTModel, Qwen2Config

from modeling_spatialboost import SpatialBoostDinov3ViTModel, SpatialBoostVLMConfig
from modeling_spatialboost.modeling_spatialboost_vlm import SpatialBoostVLMForConditionalGeneration
from spatialboost.probes import classification_probes, depth_probe, encode_images, fit_ridge, synthetic_split


IMAGE_SIZE, PATCH = 96, 16
GRID = IMAGE_SIZE // PATCH
NUM_BINS = 16
DEPTH_RANGE = (0.8, 12.0)  # metres; bin edges are log-spaced in between
# Token ids: 0 pad, 1 <image>, 2 end of answer, then the words.
WORDS = ["depth", "closer", "left", "?", *[f"r{i}" for i in range(GRID)], *[f"c{i}" for i in range(GRID)]]
WORDS += [f"d{i:02d}" for i in range(NUM_BINS)] + ["first", "second"]
VOCAB = {word: index + 3 for index, word in enumerate(WORDS)}
PAD, IMAGE, END = 0, 1, 2


@dataclass
class Scenes:
    """Rendered rooms: pixel values, per-patch log-depth and 3D x (camera right) per patch, category labels."""

    pixel_values: torch.Tensor  # (scenes, 3, H, W)
    log_depth: torch.Tensor  # (scenes, GRID, GRID) mean log-depth of each patch
    lateral: torch.Tensor  # (scenes, GRID, GRID) mean camera-frame x of each patch (metres, + = right)
    split: object  # the probes' ProbeSplit (images, depths, labels)


def render_scenes(seeds, processor) -> Scenes:
    split = synthetic_split(seeds, image_size=(IMAGE_SIZE, IMAGE_SIZE))
    pixel_values = processor(images=split.images, return_tensors="pt")["pixel_values"]
    log_depth, lateral = [], []
    columns = (np.arange(IMAGE_SIZE) + 0.5 - IMAGE_SIZE / 2) / (IMAGE_SIZE / 2)  # normalised image x
    for depth in split.depths:
        x = depth * columns[None, :]  # proportional to camera-frame x (the focal length is the same for the row)
        cells = depth.reshape(GRID, PATCH, GRID, PATCH)
        log_depth.append(np.log(cells).mean(axis=(1, 3)))
        lateral.append(x.reshape(GRID, PATCH, GRID, PATCH).mean(axis=(1, 3)))
    return Scenes(pixel_values, torch.tensor(np.array(log_depth)), torch.tensor(np.array(lateral)), split)


EDGES = torch.linspace(math.log(DEPTH_RANGE[0]), math.log(DEPTH_RANGE[1]), NUM_BINS + 1)
CENTRES = (EDGES[:-1] + EDGES[1:]) / 2


def depth_bin(log_depth: torch.Tensor) -> torch.Tensor:
    return torch.bucketize(log_depth, EDGES[1:-1])


def region_tokens(row: int, col: int) -> list[int]:
    return [VOCAB[f"r{row}"], VOCAB[f"c{col}"]]


def conversation(scenes: Scenes, index: int, rng: np.random.Generator, num_depth: int = 6, num_pairs: int = 3):
    """Token ids and labels of one conversation about scene `index`; labels mark the answer tokens (-100 elsewhere)
    and `kinds` which question each answer token belongs to (0 depth, 1 closer, 2 left)."""
    ids, labels, kinds = [IMAGE] * (GRID * GRID), [-100] * (GRID * GRID), [-1] * (GRID * GRID)

    def ask(question: list[int], answer: int, kind: int) -> None:
        ids.extend(question)
        labels.extend([-100] * len(question))
        kinds.extend([-1] * len(question))
        ids.append(answer)
        labels.append(answer)
        kinds.append(kind)

    cells = rng.choice(GRID * GRID, size=num_depth, replace=False)
    for cell in cells:
        row, col = divmod(int(cell), GRID)
        answer = VOCAB[f"d{int(depth_bin(scenes.log_depth[index, row, col])):02d}"]
        ask([VOCAB["depth"], *region_tokens(row, col), VOCAB["?"]], answer, 0)
    depth, lateral = scenes.log_depth[index], scenes.lateral[index]
    for kind, values, word in ((1, depth, "closer"), (2, lateral, "left")):
        # Pairs that the text cannot settle: those against the image-plane rule ("lower is closer", "left in the
        # image is left") or on the rule's tie line (same image row / column) are drawn as often as those that
        # follow it, when the scene has any. Near ties in 3D are not asked.
        flat = values.reshape(-1).numpy()
        first, second = np.triu_indices(GRID * GRID, k=1)
        rows_a, cols_a, rows_b, cols_b = first // GRID, first % GRID, second // GRID, second % GRID
        fair = np.abs(flat[first] - flat[second]) >= (0.1 if kind == 1 else 0.3)
        rule_first = (rows_a > rows_b) if kind == 1 else (cols_a < cols_b)
        undecided = (rows_a == rows_b) if kind == 1 else (cols_a == cols_b)
        truth = flat[first] < flat[second]
        against = fair & ((rule_first != truth) | undecided)
        follows = fair & ~against
        for _ in range(num_pairs):
            pool = against if against.any() and (not follows.any() or rng.integers(2)) else follows
            pick = int(rng.choice(np.flatnonzero(pool)))
            a, b = (first[pick], second[pick]) if rng.integers(2) else (second[pick], first[pick])
            (ra, ca), (rb, cb) = divmod(int(a), GRID), divmod(int(b), GRID)
            truth_first = bool(flat[a] < flat[b])
            answer = VOCAB["first"] if truth_first else VOCAB["second"]
            ask([VOCAB[word], *region_tokens(ra, ca), *region_tokens(rb, cb), VOCAB["?"]], answer, kind)
    ids.append(END)
    labels.append(-100)
    kinds.append(-1)
    return ids, labels, kinds


def batches(scenes: Scenes, seed: int, batch_size: int):
    """Endless batches of fresh conversations over `scenes` (input_ids, labels, kinds, pixel_values)."""
    rng = np.random.default_rng(seed)
    while True:
        index = rng.integers(len(scenes.pixel_values), size=batch_size)
        rows = [conversation(scenes, int(i), rng) for i in index]
        ids, labels, kinds = (torch.tensor([row[k] for row in rows]) for k in range(3))
        yield ids, labels, kinds, scenes.pixel_values[index], index


def fixed_set(scenes: Scenes, seed: int, batch_size: int = 64):
    """The held-out questions, once: a list of batches."""
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, len(scenes.pixel_values), batch_size):
        index = np.arange(start, min(start + batch_size, len(scenes.pixel_values)))
        rows = [conversation(scenes, int(i), rng) for i in index]
        ids, labels, kinds = (torch.tensor([row[k] for row in rows]) for k in range(3))
        out.append((ids, labels, kinds, scenes.pixel_values[index], index))
    return out


def make_base(seed: int, hidden: int, layers: int) -> DINOv3ViTModel:
    torch.manual_seed(seed)
    config = DINOv3ViTConfig(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        patch_size=PATCH,
        image_size=IMAGE_SIZE,
        num_register_tokens=0,
    )
    return DINOv3ViTModel(config)


def pretrain_base(base: DINOv3ViTModel, scenes: Scenes, steps: int, seed: int) -> float:
    """A non-spatial ability to keep: the category of the object covering the most pixels, from the pooled output."""
    labels = torch.tensor(scenes.split.labels)
    head = torch.nn.Linear(base.config.hidden_size, len(scenes.split.label_names))
    optimizer = torch.optim.AdamW([*base.parameters(), *head.parameters()], lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    base.eval()  # no RoPE jitter: the probes and the VLM see the encoder in eval mode
    for _ in range(steps):
        batch = torch.randint(len(labels), (32,), generator=generator)
        loss = F.cross_entropy(head(base(pixel_values=scenes.pixel_values[batch]).pooler_output), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def make_vlm(encoder, seed: int, hidden: int, layers: int) -> SpatialBoostVLMForConditionalGeneration:
    torch.manual_seed(seed)
    text = Qwen2Config(
        vocab_size=len(VOCAB) + 3,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        pad_token_id=PAD,
    )
    config = SpatialBoostVLMConfig(
        vision_config=encoder.config,
        text_config=text,
        image_token_index=IMAGE,
        image_seq_length=GRID * GRID,
        projector_hidden_act="gelu",
    )
    vlm = SpatialBoostVLMForConditionalGeneration(config)
    vlm.model.vision_tower.load_state_dict(encoder.state_dict())
    return vlm


def train(vlm, parameters, data, steps: int, lr: float, extra_loss=None) -> list[float]:
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, steps // 20)) * 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    vlm.train()
    losses = []
    for _ in range(steps):
        ids, labels, _kinds, pixel_values, index = next(data)
        loss = (
            extra_loss(pixel_values, index)
            if extra_loss
            else vlm(input_ids=ids, pixel_values=pixel_values, labels=labels).loss
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def evaluate_vlm(vlm, held_out, scenes: Scenes, shuffle_images: bool = False) -> dict:
    """Answer accuracy by question kind, depth AbsRel of the argmax bins, and the answer-token loss; with
    `shuffle_images`, every conversation gets another scene's image (image reliance)."""
    vlm.eval()
    totals = {"loss": 0.0, "tokens": 0, "correct": [0, 0, 0], "count": [0, 0, 0], "abs_rel": []}
    for ids, labels, kinds, pixel_values, _index in held_out:
        if shuffle_images:
            pixel_values = pixel_values.roll(1, dims=0)
        logits = vlm(input_ids=ids, pixel_values=pixel_values).logits[:, :-1]
        target, kind = labels[:, 1:], kinds[:, 1:]
        mask = target != -100
        totals["loss"] += F.cross_entropy(logits[mask], target[mask], reduction="sum").item()
        totals["tokens"] += int(mask.sum())
        prediction = logits.argmax(-1)
        for k in range(3):
            select = mask & (kind == k)
            totals["correct"][k] += int((prediction[select] == target[select]).sum())
            totals["count"][k] += int(select.sum())
        depth_mask = mask & (kind == 0)
        bins = (prediction[depth_mask] - VOCAB["d00"]).clamp(0, NUM_BINS - 1)
        truth = (CENTRES[target[depth_mask] - VOCAB["d00"]]).exp()
        totals["abs_rel"].append((CENTRES[bins].exp() - truth).abs() / truth)
    return {
        "loss_per_token": totals["loss"] / totals["tokens"],
        "depth_bin_accuracy": totals["correct"][0] / totals["count"][0],
        "depth_abs_rel": torch.cat(totals["abs_rel"]).mean().item(),
        "closer_accuracy": totals["correct"][1] / totals["count"][1],
        "left_right_accuracy": totals["correct"][2] / totals["count"][2],
    }


def text_baselines(train_scenes: Scenes, held_out) -> dict:
    """What the questions give away without the image: per-region mean depth bin (coordinates only), 'the lower
    region is closer', 'further left in the image is left'."""
    region_mean = train_scenes.log_depth.mean(0)
    abs_rel, rule = [], {1: [0, 0], 2: [0, 0]}
    for ids, labels, kinds, _pixels, _index in held_out:
        for row_ids, row_labels, row_kinds in zip(ids.tolist(), labels.tolist(), kinds.tolist(), strict=True):
            for position, kind in enumerate(row_kinds):
                if kind == 0:
                    r, c = row_ids[position - 3] - VOCAB["r0"], row_ids[position - 2] - VOCAB["c0"]
                    truth = CENTRES[row_labels[position] - VOCAB["d00"]].exp()
                    guess = CENTRES[depth_bin(region_mean[r, c])].exp()
                    abs_rel.append(abs(float(guess - truth)) / float(truth))
                elif kind in (1, 2):
                    ra, ca = row_ids[position - 5] - VOCAB["r0"], row_ids[position - 4] - VOCAB["c0"]
                    rb, cb = row_ids[position - 3] - VOCAB["r0"], row_ids[position - 2] - VOCAB["c0"]
                    first = (ra > rb) if kind == 1 else (ca < cb)
                    guess = VOCAB["first"] if first else VOCAB["second"]
                    rule[kind][0] += int(guess == row_labels[position])
                    rule[kind][1] += 1
    return {
        "coordinates_only_depth_abs_rel": float(np.mean(abs_rel)),
        "lower_is_closer_accuracy": rule[1][0] / rule[1][1],
        "image_left_is_left_accuracy": rule[2][0] / rule[2][1],
    }


def probe(encoder, probe_train: Scenes, probe_test: Scenes) -> dict:
    encoder.image_processor = PROCESSOR
    train_features = encode_images(encoder, probe_train.split.images)
    test_features = encode_images(encoder, probe_test.split.images)
    depth = depth_probe(train_features, probe_train.split.depths, test_features, probe_test.split.depths)
    category = classification_probes(train_features, probe_train.split.labels, test_features, probe_test.split.labels)
    return {"depth_abs_rel": depth["abs_rel"], **category}


PROCESSOR = DINOv3ViTImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})


def stage3_variant(name: str, stage2_vlm, base_encoder, data, args, probe_train: Scenes) -> tuple[object, dict]:
    """One stage-3-budget run from the stage-2 VLM: the encoder variant after it, and its training facts."""
    vlm = copy.deepcopy(stage2_vlm)
    for parameter in vlm.parameters():
        parameter.requires_grad_(False)
    encoder = vlm.model.vision_tower
    facts = {}
    if name.startswith("spatialboost"):
        # "spatialboost" trains at --lr3; "spatialboost@LR" (from --extra-lr3) at LR, reported beside it.
        lr = float(name.split("@")[1]) if "@" in name else args.lr3
        encoder.freeze_for_spatialboost()
        losses = train(vlm, [p for p in encoder.parameters() if p.requires_grad], data, args.stage3_steps, lr)
    elif name == "oracle":
        encoder.freeze_for_spatialboost()
        head = torch.nn.Linear(encoder.config.hidden_size, 1)
        # The head starts as the ridge fit on the base features, so the loss pushes the features, not the head.
        features = encode_images(encoder, probe_train.split.images)
        target = probe_train.log_depth.reshape(len(probe_train.log_depth), GRID, GRID)

        def depth_loss(pixel_values, index):
            patches = encoder(pixel_values=pixel_values).last_hidden_state[:, 1:]
            prediction = head(patches).squeeze(-1)
            return F.mse_loss(prediction, data.scenes.log_depth[index].reshape(len(index), -1).float())

        weights = fit_ridge(features.patches.reshape(-1, features.patches.shape[-1]), target.reshape(-1, 1))
        with torch.no_grad():
            head.weight.copy_(weights[:-1].T.float())
            head.bias.copy_(weights[-1].float())
        parameters = [*[p for p in encoder.parameters() if p.requires_grad], *head.parameters()]
        losses = train(vlm, parameters, data, args.stage3_steps, args.lr3, extra_loss=depth_loss)
    elif name == "full_ft":
        for parameter in encoder.parameters():
            parameter.requires_grad_(True)
        losses = train(vlm, list(encoder.parameters()), data, args.stage3_steps, args.lr_ft)
    elif name == "lora":
        # LoRA on a plain copy of the base encoder (no Attn⁺), its attention projections.
        plain = copy.deepcopy(base_encoder)
        lora = get_peft_model(
            plain, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        )
        boosted = vlm.model.vision_tower
        vlm.model.vision_tower = lora
        facts["lora_trainable"] = sum(p.numel() for p in lora.parameters() if p.requires_grad)
        losses = train(vlm, [p for p in lora.parameters() if p.requires_grad], data, args.stage3_steps, args.lr_lora)
        encoder = lora.merge_and_unload()
        vlm.model.vision_tower = boosted
    else:
        raise ValueError(name)
    facts["loss_first_last"] = (float(np.mean(losses[:20])), float(np.mean(losses[-20:])))
    if name.startswith(("spatialboost", "oracle")):
        facts["alpha_per_layer"] = [round(a, 4) for a in encoder.mean_alpha().values()]
    return encoder, facts


class Stream:
    """`batches` with the scenes kept for the oracle's depth loss."""

    def __init__(self, scenes: Scenes, seed: int, batch_size: int):
        self.scenes, self.iterator = scenes, batches(scenes, seed, batch_size)

    def __next__(self):
        return next(self.iterator)


def run_seed(seed: int, args, shared: dict) -> dict:
    torch.manual_seed(seed)
    started = time.time()
    base = make_base(seed, args.encoder_hidden, args.encoder_layers)
    pretrain_loss = pretrain_base(base, shared["pretrain"], args.pretrain_steps, seed)
    base_probe = probe(base, shared["probe_train"], shared["probe_test"])
    boosted = SpatialBoostDinov3ViTModel.from_base(base)
    vlm = make_vlm(boosted, seed, args.lm_hidden, args.lm_layers)
    for parameter in vlm.parameters():
        parameter.requires_grad_(False)
    stage_data = Stream(shared["stage2"], seed, args.batch_size)
    projector = list(vlm.model.multi_modal_projector.parameters())
    for parameter in projector:
        parameter.requires_grad_(True)
    stage1 = train(vlm, projector, stage_data, args.stage1_steps, args.lr2)
    lm = [*vlm.model.language_model.parameters(), *vlm.lm_head.parameters()]
    for parameter in lm:
        parameter.requires_grad_(True)
    stage2 = train(vlm, projector + lm, stage_data, args.stage2_steps, args.lr2)
    held_out = shared["held_out"]
    after2 = evaluate_vlm(vlm, held_out, shared["vlm_test"])
    shuffled = evaluate_vlm(vlm, held_out, shared["vlm_test"], shuffle_images=True)
    result = {
        "seed": seed,
        "pretrain_loss": pretrain_loss,
        "stage1_loss": (float(np.mean(stage1[:20])), float(np.mean(stage1[-20:]))),
        "stage2_loss": (float(np.mean(stage2[:20])), float(np.mean(stage2[-20:]))),
        "stage2_vlm": after2,
        "image_reliance_nats": shuffled["loss_per_token"] - after2["loss_per_token"],
        "base": base_probe,
        "variants": {},
    }
    for name in args.variants:
        # Every variant gets the same batches: the same budget and the same data.
        stage3_data = Stream(shared["stage3"], seed + 1000, args.batch_size)
        encoder, facts = stage3_variant(name, vlm, base, stage3_data, args, shared["probe_train"])
        result["variants"][name] = {**probe(encoder, shared["probe_train"], shared["probe_test"]), **facts}
        if name == "spatialboost":
            stage3_vlm = copy.deepcopy(vlm)
            stage3_vlm.model.vision_tower.load_state_dict(encoder.state_dict())
            result["stage3_vlm"] = evaluate_vlm(stage3_vlm, held_out, shared["vlm_test"])
    result["seconds"] = time.time() - started
    print(json.dumps({"seed_done": seed, **{k: v for k, v in result.items() if k != "variants"}}), flush=True)
    for name, figures in result["variants"].items():
        print(f"  {name}: {json.dumps(figures)}", flush=True)
    return result


def summarise(results: list[dict], baselines: dict, args) -> dict:
    def stats(values):
        return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    base_depth = [r["base"]["depth_abs_rel"] for r in results]
    base_knn = [r["base"]["knn_accuracy"] for r in results]
    base_linear = [r["base"]["linear_accuracy"] for r in results]
    summary = {"seeds": [r["seed"] for r in results], "text_baselines": baselines, "controls": {}}
    for name in args.variants:
        depth = [r["variants"][name]["depth_abs_rel"] for r in results]
        gains = [b - d for b, d in zip(base_depth, depth, strict=True)]
        knn = [r["variants"][name]["knn_accuracy"] - b for r, b in zip(results, base_knn, strict=True)]
        linear = [r["variants"][name]["linear_accuracy"] - b for r, b in zip(results, base_linear, strict=True)]
        summary["controls"][name] = {
            "depth_abs_rel_per_seed": depth,
            "depth_abs_rel_gain_per_seed": gains,
            "depth_abs_rel_gain_mean": stats(gains)[0],
            "category_knn_change_per_seed": knn,
            "category_linear_change_per_seed": linear,
        }
    vlm2 = [r["stage2_vlm"] for r in results]
    boost = summary["controls"].get("spatialboost", {})
    depth_std = stats(base_depth)[1]
    summary.update(
        {
            "base_depth_abs_rel": stats(base_depth),
            "depth_abs_rel_gain_mean": boost.get("depth_abs_rel_gain_mean"),
            "depth_abs_rel_seed_std": float(np.std(boost.get("depth_abs_rel_gain_per_seed", [0]), ddof=1))
            if len(results) > 1
            else 0.0,
            "base_depth_abs_rel_seed_std": depth_std,
            "category_knn_change": float(np.mean(boost.get("category_knn_change_per_seed", [0]))),
            "category_linear_change": float(np.mean(boost.get("category_linear_change_per_seed", [0]))),
            "base_category_knn_seed_std": stats(base_knn)[1],
            "image_reliance_nats": float(np.mean([r["image_reliance_nats"] for r in results])),
            "vlm_left_right_accuracy": float(np.mean([v["left_right_accuracy"] for v in vlm2])),
            "vlm_closer_accuracy": float(np.mean([v["closer_accuracy"] for v in vlm2])),
            "vlm_depth_abs_rel": float(np.mean([v["depth_abs_rel"] for v in vlm2])),
        }
    )
    gains = boost.get("depth_abs_rel_gain_per_seed", [])
    knn_changes = boost.get("category_knn_change_per_seed", [])
    summary["checks"] = {
        "vlm_left_right_at_least_75pct": summary["vlm_left_right_accuracy"] >= 0.75,
        "vlm_closer_at_least_75pct": summary["vlm_closer_accuracy"] >= 0.75,
        "vlm_depth_at_most_0.8x_coordinates_only": summary["vlm_depth_abs_rel"]
        <= 0.8 * baselines["coordinates_only_depth_abs_rel"],
        "depth_gain_above_2x_seed_std": bool(gains)
        and float(np.mean(gains)) > 2 * max(depth_std, summary["depth_abs_rel_seed_std"]),
        "category_knn_kept_within_base_spread": bool(knn_changes)
        and abs(float(np.mean(knn_changes))) <= max(2 * summary["base_category_knn_seed_std"], 0.02),
    }
    summary["claim_shown"] = all(summary["checks"].values()) and len(results) >= 3
    return summary


def write_report(results: list[dict], summary: dict, output: Path) -> Path:
    """`report.md` beside `summary.json`: the verdict, the per-seed table, the controls, alpha per layer and two
    plots (probe figures per seed and variant; alpha per layer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(summary["controls"])
    names = ["base", *variants]

    def figure(result, name, key):
        return result["base"][key] if name == "base" else result["variants"][name][key]

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, (key, title) in zip(
        axes,
        (("depth_abs_rel", "depth probe AbsRel (lower is better)"), ("knn_accuracy", "category kNN accuracy")),
        strict=True,
    ):
        for offset, result in enumerate(results):
            ax.scatter(
                np.arange(len(names)) + 0.1 * (offset - 1),
                [figure(result, n, key) for n in names],
                s=14,
                label=f"seed {result['seed']}",
            )
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.set_title(title, fontsize=8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(output / "probes.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4.5, 3))
    for result in results:
        for name in variants:
            alpha = result["variants"][name].get("alpha_per_layer")
            if alpha:
                ax.plot(range(len(alpha)), alpha, marker="o", label=f"{name}, seed {result['seed']}")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("layer")
    ax.set_ylabel("mean alpha (0.5 at conversion)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(output / "alpha.png", dpi=110)
    plt.close(fig)

    baselines = summary["text_baselines"]
    lines = [
        "# Toy reproduction of SpatialBoost's depth claim",
        "",
        f"Claim shown: **{summary['claim_shown']}**. Checks: "
        + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in summary["checks"].items())
        + ".",
        "",
        "## After stage 2 (held-out scenes)",
        "",
        "| seed | depth AbsRel | closer | left/right | image reliance (nats/answer token) |",
        "|---|---|---|---|---|",
        *[
            f"| {r['seed']} | {r['stage2_vlm']['depth_abs_rel']:.4f} | {r['stage2_vlm']['closer_accuracy']:.3f} | "
            f"{r['stage2_vlm']['left_right_accuracy']:.3f} | {r['image_reliance_nats']:.3f} |"
            for r in results
        ],
        f"| text only | {baselines['coordinates_only_depth_abs_rel']:.4f} (coordinates only) | "
        f"{baselines['lower_is_closer_accuracy']:.3f} (lower is closer) | "
        f"{baselines['image_left_is_left_accuracy']:.3f} (left in the image) | |",
        "",
        "## After stage 3: frozen-encoder probes on held-out scenes",
        "",
        "| seed | " + " | ".join(f"{n} depth AbsRel / kNN / linear" for n in names) + " |",
        "|---|" + "---|" * len(names),
        *[
            "| "
            + str(r["seed"])
            + " | "
            + " | ".join(
                f"{figure(r, n, 'depth_abs_rel'):.4f} / {figure(r, n, 'knn_accuracy'):.3f} / "
                f"{figure(r, n, 'linear_accuracy'):.3f}"
                for n in names
            )
            + " |"
            for r in results
        ],
        "",
        "| variant | depth AbsRel gain per seed (base minus variant) | mean | kNN change per seed | linear change |",
        "|---|---|---|---|---|",
        *[
            f"| {n} | "
            + ", ".join(f"{g:+.4f}" for g in c["depth_abs_rel_gain_per_seed"])
            + f" | {c['depth_abs_rel_gain_mean']:+.4f} | "
            + ", ".join(f"{g:+.3f}" for g in c["category_knn_change_per_seed"])
            + " | "
            + ", ".join(f"{g:+.3f}" for g in c["category_linear_change_per_seed"])
            + " |"
            for n, c in summary["controls"].items()
        ],
        "",
        f"Base depth AbsRel over seeds: {summary['base_depth_abs_rel'][0]:.4f} ± {summary['base_depth_abs_rel'][1]:.4f}"
        f" (std); SpatialBoost gain std over seeds {summary['depth_abs_rel_seed_std']:.4f}; base kNN std "
        f"{summary['base_category_knn_seed_std']:.3f}.",
        "",
        "Mean alpha per layer after stage 3: "
        + "; ".join(
            f"{n} seed {r['seed']} {r['variants'][n]['alpha_per_layer']}"
            for r in results
            for n in variants
            if r["variants"][n].get("alpha_per_layer")
        )
        + ".",
        "",
        "![probes](probes.png) ![alpha](alpha.png)",
        "",
        "Settings: `" + json.dumps(summary["settings"]) + "`",
    ]
    path = output / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output-dir", default="toy-reproduction")
    parser.add_argument("--quick", action="store_true", help="A smoke run: few scenes and steps, one seed.")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda (not needed at this size).")
    parser.add_argument(
        "--scenes",
        type=int,
        nargs=5,
        default=[600, 1500, 1500, 300, 200],
        help="Scenes for: pre-training, stages 1-2, stage 3, probe fit, held-out probe/VLM tests.",
    )
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--stage1-steps", type=int, default=200)
    parser.add_argument("--stage2-steps", type=int, default=3000)
    parser.add_argument("--stage3-steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--encoder-hidden", type=int, default=64)
    parser.add_argument("--encoder-layers", type=int, default=4)
    parser.add_argument("--lm-hidden", type=int, default=96)
    parser.add_argument("--lm-layers", type=int, default=3)
    parser.add_argument("--lr2", type=float, default=2e-3)
    parser.add_argument("--lr3", type=float, default=1e-3)
    parser.add_argument("--lr-ft", type=float, default=1e-4)
    parser.add_argument("--lr-lora", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=["spatialboost", "oracle", "full_ft", "lora"])
    parser.add_argument(
        "--report-from",
        metavar="DIR",
        help="Only (re)write DIR/report.md from the results.json and summary.json of an earlier run.",
    )
    parser.add_argument(
        "--extra-lr3",
        type=float,
        nargs="*",
        default=[],
        help="Further stage-3 learning rates, run as variants 'spatialboost@LR' and reported beside\n"
        "the main one; the claim is checked on --lr3 alone.",
    )
    args = parser.parse_args(argv)
    args.variants += [f"spatialboost@{lr:g}" for lr in args.extra_lr3]
    if args.report_from:
        folder = Path(args.report_from)
        results, summary = (json.loads((folder / f"{name}.json").read_text()) for name in ("results", "summary"))
        print(write_report(results, summary, folder))
        return
    if args.quick:
        args.seeds, args.scenes = args.seeds[:1], [64, 128, 128, 48, 32]
        args.pretrain_steps, args.stage1_steps, args.stage2_steps, args.stage3_steps = 20, 10, 40, 20
    torch.set_num_threads(args.threads)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    started = time.time()
    counts = args.scenes
    offsets = np.cumsum([0, *counts])
    # Disjoint scene seeds for every role (10_000 + ...: away from the seeds the package's tests use).
    names = ["pretrain", "stage2", "stage3", "probe_train", "probe_test"]
    shared = {
        name: render_scenes(range(10_000 + offsets[i], 10_000 + offsets[i + 1]), PROCESSOR)
        for i, name in enumerate(names)
    }
    shared["vlm_test"] = shared["probe_test"]
    shared["held_out"] = fixed_set(shared["vlm_test"], seed=123)
    baselines = text_baselines(shared["stage2"], shared["held_out"])
    print(json.dumps({"rendered_s": round(time.time() - started, 1), "text_baselines": baselines}), flush=True)
    results = [run_seed(seed, args, shared) for seed in args.seeds]
    summary = summarise(results, baselines, args)
    summary["settings"] = vars(args)
    summary["seconds"] = time.time() - started
    (output / "results.json").write_text(json.dumps(results, indent=1))
    (output / "summary.json").write_text(json.dumps(summary, indent=1))
    write_report(results, summary, output)
    print(
        json.dumps(
            {
                k: summary[k]
                for k in (
                    "claim_shown",
                    "depth_abs_rel_gain_mean",
                    "depth_abs_rel_seed_std",
                    "category_knn_change",
                    "image_reliance_nats",
                    "vlm_left_right_accuracy",
                    "checks",
                )
            }
        )
    )


if __name__ == "__main__":
    main()
