"""Build a tiny random-weight Qwen2.5-VL chat model, fully offline, with the 32B model's image processor.

Run with the vLLM venv's python: `.venv-vllm/bin/python deploy/vllm/make_tiny_vl_model.py OUT_DIR`.
The language model is the tiny Qwen2 of make_tiny_model.py (same byte-level BPE corpus, plus Qwen2.5-VL's
vision special tokens); the vision tower is a 2-block ViT with Qwen2.5-VL's geometry (14 px patches, 2×2
merge, temporal patch 2, window 112). `preprocessor_config.json` carries the image-processor settings of
Qwen/Qwen2.5-VL-32B-Instruct (written from their known values, no download), so one view costs the same number
of image tokens here as on the 32B model. Written to a temporary sibling folder and renamed into place;
deterministic for a fixed seed. Recipe: docs/serving.md "Tiny vision model".
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny_model import build_tokenizer, training_corpus, write_into_place

VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
# Qwen/Qwen2.5-VL-32B-Instruct preprocessor_config.json (same values as the 3B/7B/72B models)
PREPROCESSOR_32B = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2_5_VLProcessor",
}
# Qwen2-VL's chat template, reduced to text and images
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_model(tok, max_len: int) -> Qwen2_5_VLForConditionalGeneration:
    ids = {t: tok.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    cfg = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,  # head_dim 32: vLLM's CPU attention needs >= 32
            "max_position_embeddings": max_len,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
            "bos_token_id": tok.convert_tokens_to_ids("<|endoftext|>"),
            "eos_token_id": tok.convert_tokens_to_ids("<|im_end|>"),
            "pad_token_id": tok.convert_tokens_to_ids("<|endoftext|>"),
        },
        vision_config={
            "depth": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "patch_size": PREPROCESSOR_32B["patch_size"],
            "spatial_merge_size": PREPROCESSOR_32B["merge_size"],
            "temporal_patch_size": PREPROCESSOR_32B["temporal_patch_size"],
            "window_size": 112,
            "out_hidden_size": 128,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
        torch_dtype="bfloat16",
    )
    model = Qwen2_5_VLForConditionalGeneration(cfg).to(torch.bfloat16)
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--max-len", type=int, default=8192, help="context length (tokens)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    out: Path = args.out_dir.resolve()

    def write(folder: Path):
        tok = build_tokenizer(training_corpus(rng), args.max_len, extra_special=VISION_TOKENS)
        tok.chat_template = CHAT_TEMPLATE
        tok.save_pretrained(folder)
        (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)
        model = build_model(tok, args.max_len)
        model.save_pretrained(folder, safe_serialization=True)
        (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_32B, indent=2) + "\n")
        return tok, model

    tok, model = write_into_place(out, write)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"saved {out} params {n_params} vocab {len(tok)}")


if __name__ == "__main__":
    main()
