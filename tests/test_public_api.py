"""`import cnnscope` gives the whole public API, lazily (the import itself loads no torch)."""

from __future__ import annotations

import subprocess
import sys

import cnnscope


def test_every_public_name_resolves():
    for name in cnnscope.__all__:
        assert getattr(cnnscope, name) is not None, name
    assert cnnscope.objectives.channel("Conv2D_3", 1).name == "Conv2D_3:1"
    assert cnnscope.find_oips.__module__ == "cnnscope.optvis.oip"
    assert cnnscope.from_torch.__module__ == "cnnscope.nn.torch_model"
    assert callable(cnnscope.dream) and cnnscope.dream.__name__ == "dream"  # the function, not its module
    assert cnnscope.explore.__module__ == "cnnscope.app.explorer.python_api"


def test_import_is_light():
    code = "import sys, cnnscope; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_unknown_name_is_an_attribute_error():
    try:
        cnnscope.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("no error")
