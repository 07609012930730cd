"""The GPU-node launch (and the CPU one) parse with vLLM's OWN argument parser, so a typo fails CI.

The scripts print the exact argument array they exec (`--print-args`); the arrays are parsed in the
vLLM venv by `make_arg_parser(FlexibleArgumentParser())` and `validate_parsed_serve_args`, the code
path of `vllm serve` itself. No GPU and no model download are needed.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from proofpilot.agent.serving import REPO_ROOT, CpuServerConfig

pytestmark = pytest.mark.vllm

GPU_SCRIPT = REPO_ROOT / "deploy" / "vllm" / "gpu" / "serve_qwen32b.sh"
CPU_SCRIPT = REPO_ROOT / "deploy" / "vllm" / "serve_cpu.sh"
VARIANTS = {  # variant -> (tensor parallel, data parallel, quantization, kv cache dtype)
    "bf16-tp2": (2, 1, None, "auto"),
    "fp8-tp2": (2, 1, "fp8", "fp8"),
    "fp8-dp2": (1, 2, "fp8", "fp8"),
}

PARSE = r"""
import dataclasses, json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.utils.argparse_utils import FlexibleArgumentParser

def plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return json.loads(json.dumps(value, default=str))

out = {}
for name, argv in json.load(sys.stdin).items():
    try:
        args = make_arg_parser(FlexibleArgumentParser(prog=name)).parse_args(argv)
        validate_parsed_serve_args(args)
        out[name] = {key: plain(value) for key, value in vars(args).items()}
    except (SystemExit, Exception) as exc:
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}
print("\n" + json.dumps(out))
"""


def script_args(script, *extra: str, **env: str) -> list[str]:
    command = ["bash", str(script), "--print-args", *extra]
    result = subprocess.run(command, env={**os.environ, **env}, capture_output=True, check=True)
    return result.stdout.decode().split("\0")[:-1]


@pytest.fixture(scope="module")
def parsed() -> dict[str, dict]:
    """Every launch's argument array, parsed once by vLLM (one interpreter start, ~8 s)."""
    vllm_python = CpuServerConfig().venv / "bin" / "python"
    if not vllm_python.exists():
        pytest.skip(f"no vLLM venv at {vllm_python.parent.parent}; run deploy/vllm/setup.sh")
    argvs = {variant: script_args(GPU_SCRIPT, VARIANT=variant) for variant in VARIANTS}
    argvs["typo"] = script_args(GPU_SCRIPT, "--tensor-paralell-size", "2")
    argvs["cpu"] = script_args(CPU_SCRIPT)
    argvs["cpu-vision"] = script_args(CPU_SCRIPT, PROOFPILOT_VLLM_VISION="1")
    result = subprocess.run(
        [str(vllm_python), "-c", PARSE],
        input=json.dumps(argvs).encode(),
        capture_output=True,
        env={**os.environ, "VLLM_NO_USAGE_STATS": "1"},
        check=True,
        timeout=300,
    )
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_gpu_launch_parses_with_vllms_own_parser(parsed, variant):
    args = parsed[variant]
    assert "error" not in args, args.get("error")
    tp, dp, quantization, kv_dtype = VARIANTS[variant]
    assert args["model_tag"] == "Qwen/Qwen2.5-VL-32B-Instruct"
    assert args["served_model_name"] == ["qwen2.5-vl-32b"]
    assert (args["tensor_parallel_size"], args["data_parallel_size"]) == (tp, dp)
    assert (args["quantization"], args["kv_cache_dtype"]) == (quantization, kv_dtype)
    assert args["enable_prefix_caching"] is True
    assert args["structured_outputs_config"]["backend"] == "xgrammar"
    assert args["structured_outputs_config"]["disable_any_whitespace"] is True
    assert args["enable_mfu_metrics"] is True and args["enable_per_request_metrics"] is True
    assert args["limit_mm_per_prompt"] == {"image": 9}
    assert args["host"] == "127.0.0.1" and args["port"] == 8000


def test_a_typo_in_a_flag_fails_the_parse(parsed):
    assert parsed["typo"]["error"].startswith("SystemExit")  # argparse's exit on an unknown flag


def test_cpu_launch_parses_with_the_four_workarounds(parsed):
    args = parsed["cpu"]
    assert "error" not in args, args.get("error")
    assert args["served_model_name"] == ["tinyqwen"] and args["host"] == "127.0.0.1"
    assert args["max_model_len"] == 2048 and args["kv_cache_memory_bytes"] == 64 * 2**20
    assert args["enforce_eager"] is True and args["enable_chunked_prefill"] is False
    assert args["distributed_executor_backend"] == "uni"
    assert args["structured_outputs_config"]["disable_any_whitespace"] is True


def test_cpu_vision_launch_parses_with_vllms_own_parser(parsed):
    args = parsed["cpu-vision"]
    assert "error" not in args, args.get("error")
    assert args["served_model_name"] == ["tinyqwen-vl"] and args["model"].endswith("tiny-qwen2.5-vl")
    assert args["max_model_len"] == 8192 and args["limit_mm_per_prompt"] == {"image": 9, "video": 0}
    assert args["enable_chunked_prefill"] is False and args["kv_cache_memory_bytes"] == 64 * 2**20


def test_gpu_script_execs_exactly_the_printed_arguments(tmp_path):
    fake_vllm = tmp_path / "vllm"
    fake_vllm.write_text('#!/usr/bin/env bash\nprintf "%s\\0" "$@"\n')
    fake_vllm.chmod(0o755)
    ran = subprocess.run(
        ["bash", str(GPU_SCRIPT), "--max-num-seqs", "64"],
        env={**os.environ, "VLLM_BIN": str(fake_vllm), "VARIANT": "fp8-tp2"},
        capture_output=True,
        check=True,
    ).stdout.decode().split("\0")[:-1]
    assert ran == ["serve", *script_args(GPU_SCRIPT, "--max-num-seqs", "64", VARIANT="fp8-tp2")]


def test_unknown_variant_is_refused():
    result = subprocess.run(
        ["bash", str(GPU_SCRIPT), "--print-args"], env={**os.environ, "VARIANT": "int3"}, capture_output=True
    )
    assert result.returncode == 2 and b"unknown VARIANT" in result.stderr
