"""A frozen backbone sharded across processes (`TrainConfig.shard_backbone`, `attempt.training.sharding`) and
one spread over devices for inference (`load_backbone(device_map=...)`).

The slow tests launch tests/sharded_step.py on two CPU processes (torchrun, gloo) with a tiny Llama and a tiny T5:
a sharded run equals one process at the same global batch, each process holds half of the sharded weights, a run
killed with SIGKILL resumes on the other number of processes to the same end, a sharded model generates to
different lengths on each process, a backbone sharded from the start (only process 0 reads its weights) equals
one sharded whole, and an output_dir that is not one folder for all processes is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from attempt.config import TrainConfig
from attempt.prompts.library import SourcePrompt
from attempt.runs import layout
from attempt.testing import build_backbone, build_tokenizer
from attempt.training import sharding

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("sharded_step.py")
# the tiny backbones' parameters: all but the input embedding (100 words x 32) are sharded
SHARDED_TOTAL = {"llama": 21792, "t5": 41600}
EMBEDDING = 100 * 32


def launch(*args: object, processes: int = 1) -> subprocess.CompletedProcess:
    """tests/sharded_step.py on one process, or on `processes` with torchrun (a free port each time)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    runner = [sys.executable]
    if processes > 1:
        runner += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command = [*runner, str(WORKER), *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)


def launched(*args: object, processes: int = 1) -> subprocess.CompletedProcess:
    done = launch(*args, processes=processes)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / layout.CHECKPOINT_DIR / layout.CHECKPOINT_WEIGHTS_FILE))


def results(run: Path) -> dict:
    return json.loads((run / layout.RESULTS_FILE).read_text())


def predictions(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]


def assert_same_run(actual: Path, expected: Path) -> None:
    """The same trained weights (within 1e-5), metrics, predictions and attention (within 1e-5)."""
    a, b = weights(actual), weights(expected)
    assert a.keys() == b.keys()
    for name in b:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-5)
    got, want = results(actual), results(expected)
    assert (got["best_step"], got["validation"], got["test"]) == (
        want["best_step"],
        want["validation"],
        want["test"],
    )
    for got_row, want_row in zip(predictions(actual), predictions(expected), strict=True):
        got_attention, want_attention = got_row.pop("attention_weights"), want_row.pop("attention_weights")
        assert got_row == want_row  # task, index, idx, source, prediction, reference
        assert got_attention == pytest.approx(want_attention, abs=1e-5)


# ------------------------------------------------------------------------------------------ fast tests
def test_shard_backbone_is_a_config_field_and_a_command_line_flag():
    from attempt.cli import build_parser
    from attempt.cli.options import build_config

    args = build_parser().parse_args(["train", "--tasks", "rte", "--shard-backbone"])
    assert build_config(args).shard_backbone is True
    assert TrainConfig().shard_backbone is False


@pytest.mark.parametrize("mode", ["finetune", "lora"])
def test_shard_backbone_is_refused_for_modes_that_train_the_backbone(mode):
    with pytest.raises(
        ValueError, match=rf"shard_backbone shards a frozen backbone; mode='{mode}' trains it"
    ):
        TrainConfig(mode=mode, shard_backbone=True)


def test_accelerates_sharding_backends_are_refused_with_a_pointer_to_shard_backbone():
    from accelerate.utils import DistributedType

    from attempt.training.devices import check_distributed_type

    with pytest.raises(
        NotImplementedError, match=r"add --shard-backbone \(torch FSDP2 shards the frozen backbone"
    ):
        check_distributed_type(DistributedType.FSDP)


def test_shard_backbone_on_one_process_warns_and_leaves_the_backbone_whole():
    model = SimpleNamespace(backbone=build_backbone("causal"))
    one = SimpleNamespace(num_processes=1, device=torch.device("cpu"))
    with pytest.warns(UserWarning, match="shard_backbone=True with one process: nothing to shard across"):
        assert sharding.shard_if_asked(TrainConfig(shard_backbone=True), one, model) is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sharding.shard_if_asked(TrainConfig(), SimpleNamespace(num_processes=2), model) is False
    assert sharding.local_share(model.backbone) == (0, 0, SHARDED_TOTAL["llama"] + EMBEDDING)


@pytest.mark.parametrize(
    ("family", "arch", "units"),
    [
        ("causal", None, ["model.layers.0", "model.layers.1", "model"]),
        (
            "seq2seq",
            None,
            [
                "encoder.block.0",
                "encoder.block.1",
                "decoder.block.0",
                "decoder.block.1",
                "encoder",
                "decoder",
            ],
        ),  # fmt: skip
        (
            "encoder",
            None,
            ["encoder.layer.0", "encoder.layer.1"],
        ),  # not BertEmbeddings: it holds the embedding
        (
            "seq2seq",
            "bart",
            [
                "model.encoder.layers.0",
                "model.encoder.layers.1",
                "model.decoder.layers.0",
                "model.decoder.layers.1",
                "model.encoder",
                "model.decoder",
                "model",
            ],
        ),  # fmt: skip
    ],
)
def test_the_units_sharded_on_their_own_are_the_blocks_and_the_stacks_called_alone(family, arch, units):
    backbone = build_backbone(family, arch=arch)
    kept = set(backbone.get_input_embeddings().parameters())
    names = {id(module): name for name, module in backbone.named_modules()}
    assert [names[id(unit)] for unit in sharding._units(backbone, kept)] == units


def test_shard_backbone_without_a_process_group_says_how_to_launch():
    with pytest.raises(RuntimeError, match="shard_backbone needs the processes' group: launch with torchrun"):
        sharding.shard_backbone(build_backbone("causal").requires_grad_(False), torch.device("cpu"))


def test_average_gradients_without_several_processes_leaves_the_gradients_alone():
    param = torch.nn.Parameter(torch.ones(3))
    param.grad = torch.tensor([1.0, 2.0, 3.0])
    sharding.average_gradients([param])
    assert param.grad.tolist() == [1.0, 2.0, 3.0]


def test_lockstep_evaluation_gives_every_process_as_many_rows_and_drops_the_copies(monkeypatch):
    """5 rows on 2 processes: process 1 predicts its rows 1 and 3 plus a copy of row 0, and gathers only its own."""
    import attempt.evaluation.evaluate as evaluation
    from attempt.modeling import AttemptModel

    model = AttemptModel.from_backbone(
        build_backbone("seq2seq"), [SourcePrompt("mnli", torch.randn(4, 32))], tasks=["rte"], prompt_length=4
    )
    rows = [{"sentence1": "the cat", "sentence2": "a dog", "label": i % 2, "idx": 10 + i} for i in range(5)]
    seen, predict_task = [], evaluation._predict_task

    def spy(model, tokenizer, task, examples, **kwargs):
        seen.append([example["index"] for example in examples])
        return predict_task(model, tokenizer, task, examples, **kwargs)

    class Gathered(Exception):
        pass

    def gather(items):
        raise Gathered(items)

    monkeypatch.setattr(evaluation, "_predict_task", spy)
    for lockstep, predicted in ((True, [1, 3, 0]), (False, [1, 3])):
        with pytest.raises(Gathered) as gathered:
            evaluation.evaluate(
                model, build_tokenizer("seq2seq"), {"rte": rows}, batch_size=1, shard=(1, 2), gather=gather,
                lockstep=lockstep,
            )  # fmt: skip
        assert seen.pop() == predicted
        (records,) = gathered.value.args[0][0]  # this process's records of its one task
        assert [record["index"] for record in records] == [1, 3]


def test_a_checkpoint_resumes_on_another_number_of_processes_only_at_the_same_global_batch(tmp_path):
    """A 1-process checkpoint of batch 4 resumes on 2 processes of batch 2, and not of batch 3."""
    from attempt.modeling import AttemptModel
    from attempt.runs.state import CheckpointMismatch, LoopState, resume_or_start, save_checkpoint
    from attempt.training.loop import linear_schedule

    config = TrainConfig(mode="prompt_tuning", tasks=("rte",), output_dir=str(tmp_path / "run"), batch_size=4)
    model = AttemptModel.from_backbone(
        build_backbone("causal"), tasks=["rte"], prompt_length=4, method="prompt_tuning"
    )
    optimizer = torch.optim.AdamW([model.mixture.target_prompts])
    scheduler = linear_schedule(optimizer, 0, 10)

    def accelerator(processes: int) -> SimpleNamespace:
        return SimpleNamespace(
            num_processes=processes, process_index=0, is_main_process=True, device=torch.device("cpu"),
            wait_for_everyone=lambda: None,
        )  # fmt: skip

    resume_or_start(config, accelerator(1), model, optimizer, scheduler)
    save_checkpoint(config, accelerator(1), model, optimizer, scheduler, LoopState(step=3, batch_index=3))
    halved = TrainConfig(**{**config.to_dict(), "batch_size": 2, "shard_backbone": True})
    state, resumed = resume_or_start(halved, accelerator(2), model, optimizer, scheduler)
    assert resumed and (state.step, state.batch_index, state.num_processes) == (3, 3, 2)
    other = TrainConfig(**{**config.to_dict(), "batch_size": 3})
    with pytest.raises(CheckpointMismatch, match="batch_size × processes: checkpoint 4 vs now 6"):
        resume_or_start(other, accelerator(2), model, optimizer, scheduler)


@pytest.mark.parametrize(("family", "kind", "cap"), [("llama", "causal", 60_000), ("t5", "seq2seq", 120_000)])
def test_a_device_map_with_a_memory_cap_predicts_what_the_whole_backbone_does(
    tmp_path, data_dir, family, kind, cap
):
    """`attempt predict --device-map auto --max-memory cpu=...`: part of the backbone offloaded to disk (read
    back at each forward) gives the predictions of the backbone loaded whole, ranked and generated."""
    from attempt.backbones.resolve import load_backbone
    from attempt.cli import main
    from attempt.prompts.library import PromptLibrary
    from attempt.training.loop import train

    folder = tmp_path / f"tiny-{family}"
    build_backbone(kind).save_pretrained(folder)
    build_tokenizer(kind).save_pretrained(folder)
    library = PromptLibrary(tmp_path / "library")
    library.add(
        SourcePrompt("mnli", torch.randn(4, 32, generator=torch.Generator().manual_seed(1)), task="mnli")
    )
    config = TrainConfig(
        mode="attempt", backbone=str(folder), tasks=("rte",), library=str(library.root), output_dir=str(tmp_path / "run"),
        data_dir=str(data_dir), attempt={"prompt_length": 4, "bottleneck_size": 8}, max_steps=1, batch_size=4,
        eval_every=0, train_limit=8, eval_limit=4, max_source_length=24, max_target_length=4, seed=5,
    )  # fmt: skip
    train(config, progress=False)
    placed = [
        "--device-map",
        "auto",
        "--max-memory",
        f"cpu={cap}",
        "--offload-folder",
        str(tmp_path / "offload"),
    ]
    offloaded = load_backbone(
        folder, device_map="auto", max_memory={"cpu": cap}, offload_folder=tmp_path / "o"
    )
    # the cap splits the backbone between the CPU and the disk
    assert {"cpu", "disk"} <= set(offloaded.model.hf_device_map.values())
    inputs = tmp_path / "inputs.jsonl"
    pairs = [("the cat is happy .", "the dog is sad"), ("a man sleeps .", "a man is awake"), ("yes", "no")]
    inputs.write_text(
        "".join(json.dumps({"task": "rte", "sentence1": a, "sentence2": b}) + "\n" for a, b in pairs)
    )
    for method in ("rank", "generate"):
        outputs = {}
        for name, extra in (("whole", []), ("placed", placed)):
            outputs[name] = tmp_path / f"{name}-{method}.jsonl"
            argv = ["predict", config.output_dir, "--inputs", str(inputs), "--output", str(outputs[name])]
            assert main([*argv, "--method", method, *extra]) == 0
        whole = [json.loads(line) for line in outputs["whole"].read_text().splitlines()]
        placed_rows = [json.loads(line) for line in outputs["placed"].read_text().splitlines()]
        assert len(whole) == 3
        for got, want in zip(placed_rows, whole, strict=True):
            got_attention, want_attention = got.pop("attention_weights"), want.pop("attention_weights")
            assert got == want
            assert got_attention == pytest.approx(want_attention, abs=1e-6)


def test_device_map_options_are_checked_before_anything_loads():
    from attempt.backbones.resolve import load_backbone, parse_max_memory

    memory = parse_max_memory(["0=20GiB", "cpu=60GiB", "1=1000"])
    assert memory == {0: "20GiB", "cpu": "60GiB", 1: 1000}  # a GPU by its index, a plain number in bytes
    with pytest.raises(ValueError, match="--max-memory 'cpu': write DEVICE=SIZE"):
        parse_max_memory(["cpu"])
    with pytest.raises(ValueError, match="--max-memory 'cpu=lots': write DEVICE=SIZE"):
        parse_max_memory(["cpu=lots"])
    with pytest.raises(ValueError, match="max_memory and offload_folder place a backbone over devices"):
        load_backbone("no/such-backbone", max_memory={"cpu": "1GiB"})
    with pytest.raises(ValueError, match="device_map='everywhere': use one of auto, balanced"):
        load_backbone("no/such-backbone", device_map="everywhere")


def test_a_device_map_that_offloads_the_input_embedding_is_refused(tmp_path):
    from attempt.backbones.resolve import load_backbone

    build_backbone("causal").save_pretrained(tmp_path / "tiny")
    build_tokenizer("causal").save_pretrained(tmp_path / "tiny")
    with pytest.raises(ValueError, match="offloads its input embedding .* Give the first device more room"):
        load_backbone(
            tmp_path / "tiny", device_map="auto", max_memory={"cpu": 1000}, offload_folder=tmp_path / "o"
        )


# ---------------------------------------------------------------------------------- two CPU processes
@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """{family: folder} holding `one/run` (1 process, batch 4) and `two/run` (2 processes sharded, batch 2)."""
    folders: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in folders:
            root = tmp_path_factory.mktemp(f"sharded-{family}")
            launched("train", root / "one", data_dir, family, 4)
            launched("train", root / "two", data_dir, family, 2, "--shard", processes=2)
            folders[family] = root
        return folders[family]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "t5"])
def test_a_sharded_run_equals_one_process_at_the_same_global_batch(trained, family):
    """4 steps, evaluated and checkpointed every 2; 5 evaluation rows in batches of 2 (process 0: 2 batches,
    process 1: 1 without lockstep); T5 evaluates by generation, Llama by rank classification."""
    root = trained(family)
    assert_same_run(root / "two" / "run", root / "one" / "run")
    start = sources_of(root)["mnli"]  # the target prompt started as a copy of mnli's
    assert not torch.allclose(weights(root / "one" / "run")["mixture.target_prompts"][0], start)
    for folder in (layout.BEST_DIR, layout.CHECKPOINT_DIR):  # today's files, the trained part only
        assert sorted(os.listdir(root / "two" / "run" / folder)) == sorted(
            os.listdir(root / "one" / "run" / folder)
        )
    state = json.loads((root / "two" / "run" / layout.CHECKPOINT_DIR / layout.STATE_FILE).read_text())
    assert (state["step"], state["num_processes"]) == (4, 2)


def sources_of(root: Path) -> dict[str, torch.Tensor]:
    from attempt.prompts.library import PromptLibrary

    return {
        prompt.name: prompt.embeddings for prompt in PromptLibrary(root / "library").load(["mnli", "qnli"])
    }


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "t5"])
def test_each_process_holds_half_of_the_sharded_backbone_and_the_whole_input_embedding(trained, family):
    root = trained(family)
    shares = [json.loads((root / "two" / f"share-rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [share["total"] for share in shares] == [SHARDED_TOTAL[family]] * 2
    assert [share["whole"] for share in shares] == [EMBEDDING] * 2
    assert sum(share["local"] for share in shares) == SHARDED_TOTAL[family]
    assert all(abs(share["local"] / share["total"] - 0.5) < 0.01 for share in shares)


@pytest.mark.slow
def test_kill_9_then_resume_on_the_other_number_of_processes_equals_the_uninterrupted_run(
    trained, tmp_path, data_dir
):
    """Killed with SIGKILL after step 2 (its checkpoint written): 1 process resumed sharded on 2, and 2 sharded
    resumed on 1, both end where the uninterrupted 1-process run ends."""
    reference = trained("llama") / "one" / "run"
    for first, then in (((4, 1), (2, 2)), ((2, 2), (4, 1))):
        out = tmp_path / f"from-{first[1]}"
        killed = launch("train", out, data_dir, "llama", first[0], "--kill-at", 2, *(["--shard"] * (first[1] > 1)), processes=first[1])  # fmt: skip
        assert killed.returncode != 0
        state = json.loads((out / "run" / layout.CHECKPOINT_DIR / layout.STATE_FILE).read_text())
        assert (state["step"], state["num_processes"]) == (2, first[1])
        assert not (out / "run" / layout.RESULTS_FILE).exists()
        launched("train", out, data_dir, "llama", then[0], *(["--shard"] * (then[1] > 1)), processes=then[1])
        assert_same_run(out / "run", reference)


@pytest.mark.slow
@pytest.mark.parametrize(("family", "lengths"), [("llama", [3, 7]), ("t5", [4, 8])])
def test_a_sharded_model_generates_to_different_lengths_and_scores_like_the_whole_model(
    tmp_path, family, lengths
):
    """Each process generates its own number of new tokens (3 and 7; T5's output starts with the decoder start
    token): both finish, with the whole model's tokens; rank classification scores alike."""
    launched("model", tmp_path, family, processes=2)
    answers = [json.loads((tmp_path / f"model-rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [len(answer["sharded"]["generated"][0]) for answer in answers] == lengths
    for answer in answers:
        assert answer["sharded"]["generated"] == answer["whole"]["generated"]
        torch.testing.assert_close(
            torch.tensor(answer["sharded"]["scores"]),
            torch.tensor(answer["whole"]["scores"]),
            rtol=0,
            atol=1e-5,
        )
        assert answer["share"] == {"local": SHARDED_TOTAL[family] // 2, "total": SHARDED_TOTAL[family], "whole": EMBEDDING}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("family", "dtype"), [("llama", "float32"), ("t5", "bfloat16")])
def test_a_backbone_sharded_from_the_start_equals_one_sharded_whole(tmp_path, family, dtype):
    """Process 0 holds the weights, process 1 builds the backbone on the meta device (no weights): after
    `shard_from_main` both hold exactly what `shard_backbone` gives them (T5's tied embeddings still tied),
    and the models generate and score alike."""
    launched("fromstart", tmp_path, family, dtype, processes=2)
    answers = [json.loads((tmp_path / f"fromstart-rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [answer["on_meta"] for answer in answers] == [False, True]
    for answer in answers:
        assert (answer["weights"], answer["buffers"], answer["keys"]) == (0.0, 0.0, True)
        assert answer["dtypes"] == [f"torch.{dtype}"] and answer["tied"] is (family == "t5")
        assert answer["started"]["generated"] == answer["whole"]["generated"]
        assert answer["started"]["scores"] == answer["whole"]["scores"]
        assert answer["share"] == [SHARDED_TOTAL[family] // 2, SHARDED_TOTAL[family], EMBEDDING]


@pytest.mark.slow
def test_a_run_that_loads_its_backbone_by_name_shards_it_from_the_start_and_equals_one_process(
    trained, tmp_path, data_dir
):
    """The tiny Llama saved to a folder and named as the run's backbone: process 0 reads it, process 1 builds it
    empty; the run ends where the 1-process run on the same backbone ends."""
    folder = tmp_path / "tiny-llama"
    build_backbone("causal").save_pretrained(folder)
    build_tokenizer("causal").save_pretrained(folder)
    done = launched(
        "train", tmp_path / "two", data_dir, "llama", 2, "--shard", "--by-name", folder, processes=2
    )
    assert "gradient_checkpointing on (unset, so picked for it" in done.stdout
    assert_same_run(tmp_path / "two" / "run", trained("llama") / "one" / "run")
    saved = json.loads((tmp_path / "two" / "run" / layout.CONFIG_FILE).read_text())
    assert (saved["shard_backbone"], saved["gradient_checkpointing"]) == (True, True)


@pytest.mark.slow
def test_an_output_dir_not_shared_by_all_processes_is_refused_before_training(tmp_path, data_dir):
    """Each process sees "run" in its own folder, as two machines with local disks: refused, nothing left."""
    done = launch("unshared", tmp_path, data_dir, processes=2)
    assert done.returncode != 0
    message = (
        f"FolderNotShared: output_dir {tmp_path / 'rank0' / 'run'} is not shared by all processes: a file the "
        "main process wrote there is not visible to process 1 on "
    )
    assert message in done.stderr
    assert not (tmp_path / "rank0" / "run").exists() and not (tmp_path / "rank1" / "run").exists()
