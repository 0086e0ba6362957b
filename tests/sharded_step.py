"""Worker for tests/test_sharding.py: runs on one process, or on two with torchrun (gloo on CPU).

    python tests/sharded_step.py train OUT DATA_DIR FAMILY BATCH [--shard] [--kill-at K]
    torchrun --nproc_per_node 2 tests/sharded_step.py train OUT DATA_DIR FAMILY BATCH --shard
    torchrun --nproc_per_node 2 tests/sharded_step.py model OUT FAMILY
    torchrun --nproc_per_node 2 tests/sharded_step.py unshared OUT DATA_DIR
    torchrun --nproc_per_node 2 tests/sharded_step.py fromstart OUT FAMILY DTYPE
    torchrun --nproc_per_node 2 tests/sharded_step.py train OUT DATA_DIR FAMILY BATCH --shard --by-name FOLDER

``train``: ATTEMPT on RTE with a tiny backbone (FAMILY causal = Llama, seq2seq = T5), BATCH examples per process,
4 steps, evaluation and checkpoint every 2; with --shard the backbone is sharded (`TrainConfig.shard_backbone`)
and each process writes ``OUT/share-rank{R}.json`` (`attempt.training.sharding.local_share`) after step 1;
--kill-at K kills every process with SIGKILL after step K (its checkpoint written). The run is OUT/run.

``model``: one AttemptModel over a tiny backbone, sharded; each process generates with its own number of new
tokens and scores candidates, and writes ``OUT/model-rank{R}.json`` with what it got and what the same model
unsharded gives.

``fromstart``: a tiny backbone sharded from the start in DTYPE (`attempt.training.sharding.shard_from_main`:
process 0 holds its weights, the other builds it on the meta device) and the same one sharded whole
(`shard_backbone`); each process writes ``OUT/fromstart-rank{R}.json``: whether its parameters and buffers were
on meta before, the largest difference between the two's local weights and buffers, and both models' generated
tokens and scores. ``train --by-name FOLDER`` loads the backbone from FOLDER by name (so sharded from the start).

``unshared``: each process works in its own folder (OUT/rank{R}) with the relative output_dir "run": the run
folder is not shared, and the run must be refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import time
from pathlib import Path

import torch

import process_end
from attempt.config import TrainConfig
from attempt.prompts.library import PromptLibrary, SourcePrompt
from attempt.testing import build_backbone, build_tokenizer
from attempt.training.loop import train
from attempt.training.sharding import local_share

RANK = int(os.environ.get("RANK", "0"))


def sources() -> list[SourcePrompt]:
    """Two different random source prompts (with one, the attention's gradient would be rounding noise)."""
    generator = torch.Generator().manual_seed(100)
    return [SourcePrompt(n, torch.randn(4, 32, generator=generator) * 0.5, task=n) for n in ("mnli", "qnli")]


def library_at(folder: Path) -> Path:
    """A prompt library with `sources` (written by the main process only; the others wait for it)."""
    if RANK == 0 and not (folder / "qnli.json").is_file():
        for prompt in sources():
            PromptLibrary(folder).add(prompt, overwrite=True)
    while not (folder / "qnli.json").is_file():
        time.sleep(0.1)
    return folder


def config_for(out: Path, library: Path, data_dir: str, family: str, batch: int, shard: bool) -> TrainConfig:
    return TrainConfig(
        mode="attempt", backbone=f"tiny-{family}", tasks=("rte",), library=str(library), output_dir=str(out),
        data_dir=data_dir, attempt={"prompt_length": 4, "bottleneck_size": 8}, max_steps=4, batch_size=batch,
        eval_batch_size=2, learning_rate=0.01, eval_every=2, train_limit=16, eval_limit=5, max_source_length=24,
        max_target_length=4, seed=3, group_by_length=False, shard_backbone=shard,
        eval_method="generate" if family == "seq2seq" else "rank",
    )  # fmt: skip


def run_train(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    library = library_at(out.parent / "library")
    config = config_for(out / "run", library, args.data_dir, args.family, args.batch, args.shard)
    if args.by_name:
        config = dataclasses.replace(config, backbone=args.by_name)

    def on_step(step: int, model: torch.nn.Module) -> None:
        if step == 1 and args.shard:
            local, total, whole = local_share(model.backbone)
            (out / f"share-rank{RANK}.json").write_text(
                json.dumps({"local": local, "total": total, "whole": whole})
            )
        if step == args.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    kind = "seq2seq" if args.family == "t5" else "causal"
    given = {} if args.by_name else {"backbone": build_backbone(kind), "tokenizer": build_tokenizer(kind)}
    train(config, progress=False, _on_step=on_step, **given)


def run_model(args: argparse.Namespace) -> None:
    from attempt.modeling import AttemptModel
    from attempt.training.sharding import shard_backbone

    out = Path(args.out)
    kind = "seq2seq" if args.family == "t5" else "causal"
    prompts = sources()

    def model() -> AttemptModel:
        return AttemptModel.from_backbone(
            build_backbone(kind), prompts, tasks=["rte"], prompt_length=4, bottleneck_size=8
        ).eval()

    torch.distributed.init_process_group("gloo")
    whole, sharded = model(), model()
    shard_backbone(sharded.backbone, torch.device("cpu"))
    generator = torch.Generator().manual_seed(7 + RANK)
    ids = torch.randint(
        len(build_tokenizer(kind).all_special_ids) + 1, 90, (2, 5 + 2 * RANK), generator=generator
    )
    mask, task_ids = torch.ones_like(ids), torch.zeros(2, dtype=torch.long)
    new_tokens = 3 + 4 * RANK  # the processes stop at different lengths
    answers = {}
    for name, m in (("whole", whole), ("sharded", sharded)):
        with torch.no_grad():
            generated = m.generate(ids, mask, task_ids, max_new_tokens=new_tokens, do_sample=False)
            scores = m.score_candidates(ids, mask, task_ids, [[10, 4], [11]])
        answers[name] = {"generated": generated.tolist(), "scores": scores.tolist()}
    local, total, whole_kept = local_share(sharded.backbone)
    answers["share"] = {"local": local, "total": total, "whole": whole_kept}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"model-rank{RANK}.json").write_text(json.dumps(answers))


def run_fromstart(args: argparse.Namespace) -> None:
    from attempt.modeling import AttemptModel
    from attempt.training.sharding import shard_backbone, shard_from_main

    kind = "seq2seq" if args.family == "t5" else "causal"
    dtype = getattr(torch, args.dtype)
    torch.distributed.init_process_group("gloo")
    whole = build_backbone(kind).to(dtype).requires_grad_(False)
    shard_backbone(whole, torch.device("cpu"))
    if RANK == 0:
        started = build_backbone(kind).to(dtype)
    else:
        with torch.device("meta"):
            started = type(whole)._from_config(build_backbone(kind).config, dtype=dtype)
    on_meta = all(t.is_meta for t in [*started.parameters(), *started.buffers()])
    shard_from_main(started.requires_grad_(False), torch.device("cpu"))
    mine = dict(started.state_dict(keep_vars=True))
    theirs = dict(whole.state_dict(keep_vars=True))
    local = lambda t: t.to_local() if hasattr(t, "to_local") else t  # noqa: E731
    differences = [(local(mine[k]).float() - local(theirs[k]).float()).abs().max().item() for k in theirs]
    buffers = [(a - b).abs().max().item() for a, b in zip(started.buffers(), whole.buffers(), strict=True)]
    answers = {"on_meta": on_meta, "weights": max(differences), "buffers": max(buffers, default=0.0),
               "keys": sorted(mine) == sorted(theirs), "dtypes": sorted({str(p.dtype) for p in started.parameters()}),
               "tied": started.get_input_embeddings().weight is started.get_output_embeddings().weight}  # fmt: skip
    ids = torch.randint(
        len(build_tokenizer(kind).all_special_ids) + 1, 90, (2, 5), generator=torch.Generator().manual_seed(7)
    )
    for name, backbone in (("whole", whole), ("started", started)):
        model = AttemptModel.from_backbone(
            backbone, sources(), tasks=["rte"], prompt_length=4, bottleneck_size=8
        )
        with torch.no_grad():
            generated = model.eval().generate(
                ids, torch.ones_like(ids), torch.zeros(2, dtype=torch.long), max_new_tokens=3, do_sample=False
            )
            scores = model.score_candidates(
                ids, torch.ones_like(ids), torch.zeros(2, dtype=torch.long), [[10, 4], [11]]
            )
        answers[name] = {"generated": generated.tolist(), "scores": scores.float().tolist()}
    answers["share"] = list(local_share(started))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"fromstart-rank{RANK}.json").write_text(json.dumps(answers))


def run_unshared(args: argparse.Namespace) -> None:
    own = Path(args.out) / f"rank{RANK}"
    own.mkdir(parents=True, exist_ok=True)
    os.chdir(own)  # "run" is another folder on each process, as on two machines without a shared disk
    library = library_at(Path(args.out) / "library")
    config = config_for(Path("run"), library, args.data_dir, "llama", 2, True)
    train(config, backbone=build_backbone("causal"), tokenizer=build_tokenizer("causal"), progress=False)


def main() -> None:
    process_end.watch()
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    trained = commands.add_parser("train")
    trained.add_argument("out")
    trained.add_argument("data_dir")
    trained.add_argument("family", choices=("llama", "t5"))
    trained.add_argument("batch", type=int)
    trained.add_argument("--shard", action="store_true")
    trained.add_argument("--kill-at", type=int)
    trained.add_argument(
        "--by-name", help="load the backbone from this folder (config.backbone), not in code"
    )
    modelled = commands.add_parser("model")
    modelled.add_argument("out")
    modelled.add_argument("family", choices=("llama", "t5"))
    fromstart = commands.add_parser("fromstart")
    fromstart.add_argument("out")
    fromstart.add_argument("family", choices=("llama", "t5"))
    fromstart.add_argument("dtype", choices=("float32", "bfloat16"))
    unshared = commands.add_parser("unshared")
    unshared.add_argument("out")
    unshared.add_argument("data_dir")
    args = parser.parse_args()
    commands = {"train": run_train, "model": run_model, "fromstart": run_fromstart, "unshared": run_unshared}
    commands[args.command](args)
    process_end.end()  # barrier, destroy the group, exit without finalizing (see tests/process_end.py)


if __name__ == "__main__":
    main()
