"""`cnnscope compare`: the files it writes, a sweep folder, and one-line errors."""

from __future__ import annotations

import json
import shutil

import torch

from cnnscope.app.cli import main
from cnnscope.nn.checkpoint import load_checkpoint, save_checkpoint
from helpers import permute_conv2d_3


def permuted_checkpoint(small_model_dir, folder, seed: int = 0):
    """The small model with Conv2D_3's maps permuted (and Dense_1's columns), saved to `folder`."""
    model, config = load_checkpoint(small_model_dir)
    permutation = torch.randperm(128, generator=torch.Generator().manual_seed(seed))
    permute_conv2d_3(model, permutation)
    save_checkpoint(model, folder, data=config["data"], recipe="test-permuted")
    return permutation


def test_compare_writes_every_figure_and_the_json(small_model_dir, tmp_path, capsys):
    permutation = permuted_checkpoint(small_model_dir, tmp_path / "permuted")
    out = tmp_path / "out"
    code = main(["compare", str(small_model_dir), str(tmp_path / "permuted"), "--images", "300", "--out", str(out),
                 "--best", "2", "--worst", "1", "--oip-steps", "20", "--layers", "Conv2D_3,Dense_1"])
    assert code == 0, capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == {"cka.png", "cka_diagonal.png", "matches.png", "pairs_Conv2D_3.png",
                                              "compare.json"}
    body = json.loads((out / "compare.json").read_text())
    pair = body["pairs"][0]
    assert body["images"] == 300 and body["match_layers"] == ["Conv2D_3", "Dense_1"]
    assert abs(pair["same_layer_cka"]["Conv2D_3"] - 1) < 1e-6
    best_a, best_b = pair["matches"]["Conv2D_3"]["pairs"][0]
    assert int(permutation[best_b]) == best_a and pair["matches"]["Conv2D_3"]["correlations"][0] > 0.999
    assert pair["matches"]["Dense_1"]["median"] > 0.999  # Dense_1 itself is unchanged
    from PIL import Image

    picture = Image.open(out / "pairs_Conv2D_3.png")
    assert picture.height > 3 * 84  # three rows of pairs (2 best, 1 worst) under a header


def test_a_sweep_folder_compares_all_runs_pairwise(small_model_dir, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    shutil.copytree(small_model_dir, sweep / "seed-0")
    permuted_checkpoint(small_model_dir, sweep / "seed-1", seed=1)
    permuted_checkpoint(small_model_dir, sweep / "seed-2", seed=2)
    (sweep / "sweep.csv").write_text("run\n")
    out = tmp_path / "out"
    assert main(["compare", str(sweep), "--images", "200", "--out", str(out), "--layers", "Conv2D_3"]) == 0
    body = json.loads((out / "compare.json").read_text())
    assert body["models"] == ["seed-0", "seed-1", "seed-2"] and len(body["pairs"]) == 3
    table = body["tables"]["cka"]["Conv2D_3"]
    assert all(abs(value - 1) < 1e-6 for row in table for value in row)
    assert {"pairwise_cka.png", "pairwise_match.png", "cka_diagonal.png"} <= {p.name for p in out.iterdir()}


def test_bad_input_is_one_line(small_model_dir, tmp_path, capsys):
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("hello")
    assert main(["compare", str(small_model_dir), str(not_a_model), "--out", str(tmp_path / "o1")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no checkpoint at" in error
    assert main(["compare", str(not_a_model), "--out", str(tmp_path / "o2")]) == 2
    assert "neither a checkpoint nor a sweep folder" in capsys.readouterr().err
    other = tmp_path / "other"
    from cnnscope.nn.model import CNN
    from cnnscope.nn.spec import ModelSpec, Normalization

    spec = ModelSpec.from_lists(conv=((8, (3, 3), "relu"), (8, (3, 3), "relu")), pools=((2, 2),),
                                normalization=Normalization("global", 0.1307, 0.3081))
    save_checkpoint(CNN(spec), other, data={"split": "official", "seed": 0})
    code = main(["compare", str(small_model_dir), str(other), "--images", "50", "--layers", "Conv2D_3",
                 "--out", str(tmp_path / "o3")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert "--layers: layer 'Conv2D_3' is only in" in error and "layers in all: Conv2D_1, Conv2D_2" in error
    assert not (tmp_path / "o3").exists()  # nothing half-written
