"""The README's Python examples run against the current library (on the small test model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)

# Smaller workloads, same calls: the test model instead of the default one, a few maps.
SHORTER = [
    ('load_model("/path/to/model")', "load_model(SMALL_MODEL)"),
    ("load_model()", "load_model(SMALL_MODEL)"),
    ('map_objectives(model, "Conv2D_3")', 'map_objectives(model, "Conv2D_3", [0, 1])'),
    ("AscentSettings(steps=300)", "AscentSettings(steps=20)"),
]


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index, small_model_dir):
    code = BLOCKS[index]
    for old, new in SHORTER:
        code = code.replace(old, new)
    namespace = {"SMALL_MODEL": small_model_dir}
    exec(compile(code, f"README python block {index}", "exec"), namespace)
    # the examples end in the objects they describe; check the main ones are real
    if "run" in namespace:
        assert namespace["picture"].ndim == 3 and namespace["picture"].shape[2] == 3
        assert namespace["result"].values.shape[1] == 2
    if "colour" in namespace:
        assert namespace["oips"].images.shape == (8, 3, 32, 32) and namespace["tiles"].shape[2] == 3
    if "maps" in namespace:
        assert set(namespace["maps"]) == {"Conv2D_1", "Dense_1"}
        assert namespace["cam"].shape == (8, 28, 28)
