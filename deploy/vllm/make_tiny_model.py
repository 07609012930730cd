"""Build a tiny random-weight Qwen2 chat model and byte-level BPE tokenizer, fully offline.

Run with the vLLM venv's python: `.venv-vllm/bin/python deploy/vllm/make_tiny_model.py OUT_DIR`.
The model is written to a temporary sibling folder and renamed into place, so an interrupted build
never leaves a half-written OUT_DIR behind. Deterministic for a fixed seed (random weights, seed 0).
Recipe: docs/serving.md "Tiny model" (head_dim 32: vLLM's CPU attention needs >= 32).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

T = TypeVar("T")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WORDS = [
    "the", "a", "merge", "no_merge", "split", "clean", "decision", "confidence", "segment",
    "fragment", "neuron", "axon", "dendrite", "cable", "length", "angle", "gap", "radius", "ratio",
    "branch", "points", "tortuosity", "direction", "interface", "true", "false", "null", "value",
    "number", "string", "object", "array", "schema", "json", "model", "yes", "no", "answer",
    "with", "only", "feature",
]


def training_corpus(rng: random.Random) -> list[str]:
    """Small local corpus (no downloads): English-ish words, JSON verdicts and numbers."""
    corpus: list[str] = []
    for _ in range(4000):
        corpus.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 15))))
        decision = rng.choice(["merge", "no_merge", "split", "clean"])
        corpus.append(json.dumps({"decision": decision, "confidence": round(rng.random(), 3)}))
    corpus += [f'{n} {n / 7:.4f} {{"k": [{n}, {n + 1}]}}' for n in range(2000)]
    return corpus


def build_tokenizer(
    corpus: list[str], max_len: int, extra_special: Sequence[str] = ()
) -> PreTrainedTokenizerFast:
    """Byte-level BPE of 1,024 tokens; `extra_special` (e.g. vision tokens) are added as special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=SPECIAL_TOKENS + list(extra_special),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=max_len,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


def build_model(hf_tok: PreTrainedTokenizerFast, max_len: int) -> Qwen2ForCausalLM:
    cfg = Qwen2Config(
        vocab_size=len(hf_tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_len,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=hf_tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=hf_tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=hf_tok.convert_tokens_to_ids("<|endoftext|>"),
        torch_dtype="bfloat16",
    )
    model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.generation_config.eos_token_id = cfg.eos_token_id
    return model


def write_into_place(out: Path, write: Callable[[Path], T]) -> T:
    """`write(folder)` into a temporary sibling of `out`, then renamed into place: an interrupted build never
    leaves a half-written `out` behind. Returns what `write` returned."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        result = write(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--max-len", type=int, default=2048, help="context length (tokens)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    out: Path = args.out_dir.resolve()

    def write(folder: Path):
        hf_tok = build_tokenizer(training_corpus(rng), args.max_len)
        hf_tok.save_pretrained(folder)
        model = build_model(hf_tok, args.max_len)
        model.save_pretrained(folder, safe_serialization=True)
        return hf_tok, model

    hf_tok, model = write_into_place(out, write)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"saved {out} params {n_params} vocab {len(hf_tok)}")


if __name__ == "__main__":
    main()
