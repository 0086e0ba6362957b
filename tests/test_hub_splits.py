"""Every registered task asks the Hub for splits its dataset has: the split names of each dataset config, as
its dataset card lists them (the Hub is not reachable from CI, so they are written down here). A task added
without its entry, or a split name the Hub does not have, fails here instead of at download time."""

from __future__ import annotations

from pathlib import Path

import pytest

from attempt.data.sources import mirror_path
from attempt.tasks import get_task, list_tasks

GLUE = ("train", "validation", "test")
SUPER_GLUE = ("train", "validation", "test")
# (hub_id, config) → the split names on the Hub (dataset cards, as of 2025)
HUB_SPLITS: dict[tuple[str, str | None], tuple[str, ...]] = {
    **{("nyu-mll/glue", c): GLUE for c in ("cola", "sst2", "mrpc", "qqp", "stsb", "qnli", "rte")},
    ("nyu-mll/glue", "mnli"): (
        "train",
        "validation_matched",
        "validation_mismatched",
        "test_matched",
        "test_mismatched",
    ),
    **{
        ("aps/super_glue", c): SUPER_GLUE
        for c in ("boolq", "cb", "copa", "multirc", "record", "rte", "wic", "wsc", "wsc.fixed")
    },
    ("rajpurkar/squad", "plain_text"): ("train", "validation"),
    ("mrqa-workshop/mrqa", "plain_text"): ("train", "validation", "test"),
    ("allenai/winogrande", "winogrande_xl"): ("train", "validation", "test"),
    ("fancyzhx/yelp_polarity", None): ("train", "test"),  # no validation split
    ("allenai/scitail", "tsv_format"): ("train", "validation", "test"),
    ("google-research-datasets/paws", "labeled_final"): ("train", "validation", "test"),
}
# split files of the benchmark mirror that are not Hub splits, each documented in its MANIFEST.md
MIRROR_ONLY_SUFFIXES = ("_proxy", "_fewglue32")


@pytest.mark.parametrize("name", list_tasks())
def test_every_split_a_task_asks_for_is_a_hub_split_of_its_dataset(name):
    task = get_task(name)
    key = (task.hub_id, task.config)
    assert key in HUB_SPLITS, (
        f"{name}: record the Hub's split names of {key} in HUB_SPLITS (from its dataset card)"
    )
    asked = [task.train_split, task.validation_split] + ([task.test_split] if task.test_split else [])
    missing = [split for split in asked if split not in HUB_SPLITS[key]]
    assert not missing, f"{name} asks for {missing}; {task.hub_id} has {HUB_SPLITS[key]}"


def test_yelp_polarity_takes_its_official_evaluation_set_from_test():
    task = get_task("yelp_polarity")
    assert (task.train_split, task.validation_split, task.is_small) == ("train", "test", False)


@pytest.mark.data
def test_the_mirror_names_its_files_by_the_hub_splits(data_dir):
    checked = 0
    for name in list_tasks():
        task = get_task(name)
        folder = mirror_path(task, "train", data_dir).parent
        for path in sorted(Path(folder).glob("*.jsonl")) if folder.is_dir() else []:
            split = path.stem
            assert split in HUB_SPLITS[(task.hub_id, task.config)] or split.endswith(MIRROR_ONLY_SUFFIXES), (
                path
            )
            checked += 1
    assert checked > 20
