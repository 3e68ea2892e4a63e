"""`cnnscope oip`: the files it writes, and every user error (one line, exit 2, no files)."""

from __future__ import annotations

import contextlib
import json

import pytest
from PIL import Image

from cnnscope.app.cli import main


def run_cli(args, capsys):
    code = main(["oip", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_maps_with_evaluate_writes_picture_strip_and_json(small_model_dir, mnist, tmp_path, capsys):
    out = tmp_path / "maps.png"
    code, stdout, err = run_cli(["--model", str(small_model_dir), "--maps", "0-2,9", "--steps", "15",
                                 "--evaluate", "--quiet", "--out", str(out), "--strip", "9", "--gif"], capsys)
    assert code == 0, err
    assert "reacted" in stdout and "dataset max" in stdout
    body = json.loads(out.with_suffix(".json").read_text())
    assert [t["map"] for t in body["targets"]] == [0, 1, 2, 9]
    assert body["settings"]["steps"] == 15 and body["evolution_target"] == "Conv2D_3:9"
    assert all("dataset_max" in t and len(t["trajectory"]) == 16 for t in body["targets"])
    assert body["quality"]["targets"] == 4 and "live" in body["quality"]
    with Image.open(out) as picture:
        assert picture.size[0] > 4 * 2 * 28 * 8  # four big tiles, two renderings each
    assert (tmp_path / "maps_evolution.png").exists() and (tmp_path / "maps.gif").exists()
    assert body["files"]["picture"] == str(out)


def test_logits_nodes_and_dense_units(small_model_dir, tmp_path, capsys):
    code, stdout, err = run_cli(["--model", str(small_model_dir), "--logit", "all", "--steps", "10", "--quiet",
                                 "--out", str(tmp_path)], capsys)
    assert code == 0, err
    body = json.loads((tmp_path / "oip_logits.json").read_text())
    assert [t["map"] for t in body["targets"]] == list(range(10))
    assert body["targets"][4]["label"].startswith("digit 4")
    code, _, err = run_cli(["--model", str(small_model_dir), "--layer", "Conv2D_3", "--node", "120:1,1",
                            "--node", "5", "--steps", "10", "--quiet", "--out", str(tmp_path / "n.png")], capsys)
    assert code == 0, err
    targets = json.loads((tmp_path / "n.json").read_text())["targets"]
    assert (targets[0]["map"], targets[0]["y"], targets[0]["x"]) == (120, 1, 1)
    assert (targets[1]["map"], targets[1]["y"]) == (5, None)
    code, _, err = run_cli(["--model", str(small_model_dir), "--layer", "Dense_1", "--maps", "0-3", "--steps", "10",
                            "--quiet", "--out", str(tmp_path / "d.png"), "--precursor", "4", "--restarts", "2"], capsys)
    assert code == 0, err
    body = json.loads((tmp_path / "d.json").read_text())
    assert body["precursor"] == 4 and body["restarts"] == 2 and len(body["targets"]) == 4


def test_start_from_a_test_image(small_model_dir, mnist, tmp_path, capsys):
    code, _, err = run_cli(["--model", str(small_model_dir), "--maps", "3", "--steps", "5", "--quiet",
                            "--start", "test:0", "--out", str(tmp_path / "s.png")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "s.json").read_text())["targets"][0]["start"]["kind"] == "image"


BAD = [
    (["--layer", "Conv2D_9"], "unknown layer 'Conv2D_9'"),
    (["--chunk", "0"], "chunk must be"),
    (["--chunk", "2.5"], "chunk must be"),
    (["--maps", "128"], "0..127"),
    (["--maps", "5-x"], "not a number or range"),
    (["--maps", "9-3"], "backwards"),
    (["--layer", "Conv2D_3", "--node", "3:3,0"], "valid y is 0..2"),
    (["--layer", "Conv2D_3", "--node", "200"], "0..127"),
    (["--layer", "Conv2D_3", "--node", "3:1"], "MAP:Y,X"),
    (["--layer", "Dense_1", "--node", "3:0,0"], "without y, x"),
    (["--logit", "10"], "0..9"),
    (["--logit", "4", "--maps", "3"], "choose one of"),
    (["--scales", "3,7,14,30"], "larger than the 28x28"),
    (["--scales", "0,7"], "positive"),
    (["--scales", "3,x"], "not a whole number"),
    (["--scales", "3,7", "--factors", "0.5"], "one factor per scale"),
    (["--factors", "0.5,nan,0.5,0.5"], "finite"),
    (["--steps", "0"], "steps"),
    (["--steps", "nan"], "steps"),
    (["--epsilon", "-1"], "epsilon"),
    (["--epsilon", "nan"], "epsilon"),
    (["--tolerance", "nan"], "tolerance"),
    (["--blur", "nan"], "blur"),
    (["--restarts", "0"], "restarts"),
    (["--precursor", "-2"], "precursor"),
    (["--seed", "nan"], "seed"),
    (["--out", "picture.jpg"], ".png"),
    (["--start", "missing.png"], "not found"),
    (["--start", "test:99999"], "0..9999"),
    (["--strip", "77", "--maps", "1,2"], "--strip"),
    (["--size", "40", "--logit", "1"], "after Flatten"),
    (["--steps", "abc"], "invalid float"),
    (["--strategy", "coarse-to-fine", "--stages", "10,10"], "2 stage steps for 4 noise scales"),
    (["--strategy", "coarse-to-fine", "--stages", "10,0,5,5"], "stage steps must be a whole number >= 1"),
    (["--strategy", "coarse-to-fine", "--stages", "10,x,5,5"], "not a whole number"),
    (["--strategy", "coarse-to-fine", "--start", "test:3"], "cannot be combined with the coarse-to-fine"),
    (["--starts", "1"], "starts must be >= 2"),
    (["--starts", "3", "--restarts", "2"], "disagree"),
    (["--snapshots", "-1"], "snapshots"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_user_errors(small_model_dir, mnist, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) if message == "invalid float" else contextlib.nullcontext() as caught:
        code = main(["oip", "--model", str(small_model_dir), "--steps", "3", "--quiet", *args]
                    if "--steps" not in args else ["oip", "--model", str(small_model_dir), "--quiet", *args])
    if message == "invalid float":
        code = caught.value.code
    _, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == []  # no partial files


def test_missing_model_is_a_user_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["--model", str(tmp_path / "nope"), "--steps", "3"], capsys)
    assert code == 2 and "no checkpoint" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_gallery_strategy_one_and_convergence_report(small_model_dir, tmp_path, capsys):
    code, out, err = run_cli(["--model", str(small_model_dir), "--maps", "0-5", "--starts", "3", "--steps", "30",
                              "--snapshots", "3", "--quiet", "--out", str(tmp_path / "g.png")], capsys)
    assert code == 0, err
    body = json.loads((tmp_path / "g.json").read_text())
    gallery = body["gallery"]
    assert len(gallery["similarity"]) == 6 and gallery["stable"] + gallery["start_dependent"] <= 6
    assert all(len(target["starts"]) == 3 for target in body["targets"])
    with Image.open(tmp_path / "g_gallery.png") as picture:
        assert picture.height > 6 * 60  # one row per target
    with Image.open(tmp_path / "g_evolution.png") as strip:
        assert strip.width > 4 * 80  # five snapshots of 84 px
    assert [row["step"] for row in body["targets"][0]["convergence"]] == [0, 3, 6, 12, 30]  # b = 30 // 2**3
    assert "median similarity" in out and "convergence of" in out and " => " in out

    code, out, err = run_cli(["--model", str(small_model_dir), "--maps", "0-3", "--strategy", "coarse-to-fine",
                              "--stages", "3,3,4,10", "--quiet", "--out", str(tmp_path / "c.png")], capsys)
    assert code == 0, err
    body = json.loads((tmp_path / "c.json").read_text())
    assert body["strategy"] == {"name": "coarse-to-fine", "stage_steps": [3, 3, 4, 10]}
    assert body["settings"]["steps"] == 20 and len(body["targets"][0]["trajectory"]) == 21


def test_default_layer_is_the_deepest_conv_layer(tmp_path, capsys):
    from cnnscope.nn.checkpoint import save_checkpoint
    from cnnscope.nn.model import CNN
    from cnnscope.nn.spec import ModelSpec

    spec = ModelSpec.from_lists(conv=((4, (3, 3), "relu"), (6, (3, 3), "tanh")), pools=((2, 2),),
                                dense=((10, "softmax"),))
    save_checkpoint(CNN(spec), tmp_path / "two")
    code, out, err = run_cli(["--model", str(tmp_path / "two"), "--steps", "5", "--quiet",
                              "--out", str(tmp_path / "z.png")], capsys)
    assert code == 0, err
    body = json.loads((tmp_path / "z.json").read_text())
    assert [t["name"] for t in body["targets"]] == [f"Conv2D_2:{m}" for m in range(6)]
