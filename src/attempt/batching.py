"""From a run's tasks to its training batches: the paper's splits per task, then a deterministic batch stream.

`load_task_data` applies the paper's split protocol (`attempt.splits.paper_splits`), k-shot sampling and the
row limits of a `TrainConfig`. `BatchStream` turns the training rows into global batches whose order depends
only on (seed, epoch, number of processes), so a resumed run consumes exactly the batches the interrupted
run would have, and hands each process its slice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from attempt.collate import Collator
from attempt.config import TrainConfig
from attempt.splits import LengthGroupedBatchSampler, MixtureSampler, few_shot, paper_splits
from attempt.tasks import get_task

if TYPE_CHECKING:
    from attempt.train import LoopState

GROUP_FACTOR = 50  # length grouping: mega-batches of this many batches are sorted by length


def load_task_data(config: TrainConfig) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{task: {"train", "validation", "test": rows}}`` with the paper's splits, k-shot and limits applied."""
    data = {}
    for name in config.tasks:
        task = get_task(name)
        splits = paper_splits(task, config.data_dir, seed=config.seed if config.split_seed is None else config.split_seed)
        train_rows = list(splits["train"])
        if config.k_shot is not None:
            train_rows = list(few_shot(train_rows, task, config.k_shot, seed=config.seed, allow_fewer=config.k_shot_allow_fewer))
        if config.train_limit is not None:
            train_rows = train_rows[: config.train_limit]
        limits = {"validation": config.eval_limit, "test": config.eval_limit if config.test_limit is None else config.test_limit}
        evaluation = {s: list(splits[s])[: limits[s]] if limits[s] else list(splits[s]) for s in limits}
        data[task.name] = {"train": train_rows, **evaluation}
    return data



class BatchStream:
    """Deterministic training batches: the order of epoch e depends only on (seed, e, number of processes).

    One task: a shuffled (optionally length-grouped) pass over the examples. Several tasks: an epoch of
    `MixtureSampler` draws (examples-proportional mixing, capped and tempered), cut into mixed-task batches
    (length-grouped inside mega-batches when asked). Each global batch of ``batch_size × processes`` examples
    is split into contiguous per-process slices.
    """

    def __init__(self, examples: dict[str, list[dict]], collator: Collator, config: TrainConfig, rank: int, world: int):
        self.tasks = list(examples)
        self.examples = examples
        self.config = config
        self.rank, self.world = rank, world
        self.global_batch = config.batch_size * world
        self.lengths = (
            {t: [collator.source_length(e) for e in rows] for t, rows in examples.items()}
            if config.group_by_length
            else None
        )
        self._cache: tuple[int, list[list[dict]]] | None = None

    def epoch_batches(self, epoch: int) -> list[list[dict]]:
        """The global batches of epoch `epoch` (the last epoch asked for is cached)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        seed = self.config.seed
        if len(self.tasks) == 1:
            rows = self.examples[self.tasks[0]]
            if self.lengths is not None:
                sampler = LengthGroupedBatchSampler(self.lengths[self.tasks[0]], self.global_batch, seed=seed, group_factor=GROUP_FACTOR)
                sampler.set_epoch(epoch)
                batches = [[rows[i] for i in batch] for batch in sampler]
            else:
                order = np.random.default_rng([seed, epoch]).permutation(len(rows))
                batches = [[rows[i] for i in order[s : s + self.global_batch]] for s in range(0, len(order), self.global_batch)]
        else:
            sizes = [len(self.examples[t]) for t in self.tasks]
            sampler = MixtureSampler(sizes, cap=self.config.mixing_cap, temperature=self.config.mixing_temperature, seed=seed)
            sampler.set_epoch(epoch)
            drawn = [(self.tasks[t], i) for t, i in sampler]
            if self.lengths is not None:
                mega = self.global_batch * GROUP_FACTOR
                grouped = []
                for start in range(0, len(drawn), mega):
                    group = drawn[start : start + mega]
                    grouped.extend(sorted(group, key=lambda ti: -self.lengths[ti[0]][ti[1]]))
                drawn = grouped
            batches = [[self.examples[t][i] for t, i in drawn[s : s + self.global_batch]] for s in range(0, len(drawn), self.global_batch)]
            if self.lengths is not None:
                order = np.random.default_rng([seed, epoch, 1]).permutation(len(batches))
                batches = [batches[i] for i in order]
        batches = [b for b in batches if len(b) >= self.world]  # every process needs at least one example
        if not batches:
            raise ValueError(f"Not enough training examples for {self.world} processes.")
        self._cache = (epoch, batches)
        return batches

    def next_local(self, state: LoopState) -> list[dict]:
        """This process's slice of the next global batch; advances ``state.epoch`` / ``state.batch_index``."""
        batches = self.epoch_batches(state.epoch)
        if state.batch_index >= len(batches):
            state.epoch, state.batch_index = state.epoch + 1, 0
            batches = self.epoch_batches(state.epoch)
        batch = batches[state.batch_index]
        state.batch_index += 1
        bounds = np.linspace(0, len(batch), self.world + 1).round().astype(int)
        return batch[bounds[self.rank] : bounds[self.rank + 1]]

