"""TrainConfig: YAML round trip, unknown keys, and values YAML reads with the wrong type."""

from __future__ import annotations

import pytest

from attempt.config import TrainConfig


def test_yaml_numbers_written_without_a_dot_become_numbers(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("mode: attempt\nlearning_rate: 3e-1\nmax_steps: '20'\nattempt:\n  temperature: 2087\n")
    config = TrainConfig.from_yaml(recipe, {"attention_learning_rate": "1e-2"})
    assert (config.learning_rate, config.max_steps, config.attention_learning_rate) == (0.3, 20, 0.01)
    assert type(config.learning_rate) is float and type(config.max_steps) is int
    assert config.attempt_config().temperature == 2087.0
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"learning_rate": "fast"}, r"'learning_rate' must be float \| None; got 'fast'"),  # None: picked
        ({"max_steps": 2.5}, "'max_steps' must be int; got 2.5"),
        ({"group_by_length": "yes"}, "'group_by_length' must be bool"),
        ({"lr": 0.1}, "Unknown TrainConfig key\\(s\\): lr. Valid keys: attempt, attention_learning_rate"),
        ({"attempt": {"poolin": "max"}}, "Unknown attempt key\\(s\\): poolin"),
        ({"mode": "sft"}, "mode='sft' is not valid. Choose one of: source, attempt"),
        # a YAML list or mapping where one value is expected (`--set backbone=[a,b]`): one line, not a TypeError
        ({"backbone": ["a", "b"]}, r"'backbone' must be str; got a list \['a', 'b'\]"),
        ({"library": {"a": 1}}, r"'library' must be str; got a mapping"),
        ({"attempt": {"prompt_length": [1, 2]}}, r"attempt key 'prompt_length' must be int; got a list"),
        ({"attempt": ["x"]}, r"'attempt' must be dict\[str, Any\]; got a list"),
    ],
)
def test_bad_values_name_the_key(data, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(data)
