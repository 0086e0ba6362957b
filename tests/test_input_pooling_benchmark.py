"""benchmarks/input_pooling.py: its spread measures against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks import input_pooling


def test_identical_inputs_have_cosine_one_and_no_varying_part():
    bench = input_pooling
    same = torch.tensor([[3.0, 4.0]] * 5)
    assert bench.spread(same) == {"pairwise_cosine": 1.0, "varying_part": 0.0}


def test_orthogonal_inputs_by_hand():
    bench = input_pooling
    # (1, 0) and (0, 1): cosine 0; mean (0.5, 0.5); each is sqrt(0.5) from it, and of norm 1
    assert bench.spread(torch.tensor([[1.0, 0.0], [0.0, 1.0]])) == {"pairwise_cosine": 0.0,
                                                                   "varying_part": round(math.sqrt(0.5), 3)}  # fmt: skip
    # (1, 0), (1, 1), (0, 1): cosines 1/√2, 0, 1/√2 over the 3 pairs
    three = bench.spread(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]))
    assert three["pairwise_cosine"] == pytest.approx(2 / math.sqrt(2) / 3, abs=1e-3)
