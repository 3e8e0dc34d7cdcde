"""The classic filters: their values, apply_kernels against SciPy, and what each does to simple images."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import signal

from cnnpl.errors import CnnplError
from cnnpl.kernels import KERNELS, NOTES_IMAGE, apply_kernels, init_conv_weight_, kernel, list_kernels, main


def test_the_notes_kernels():
    assert kernel("sharpen").tolist() == [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]
    assert kernel("edge").tolist() == [[1, 1, 1], [1, -8, 1], [1, 1, 1]]
    assert kernel("vertical_edge").tolist() == [[1, 0, -1]] * 3
    assert kernel("horizontal_edge").tolist() == [[1, 1, 1], [0, 0, 0], [-1, -1, -1]]
    assert kernel("sobel_x").tolist() == [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    assert torch.equal(kernel("sobel_y"), kernel("sobel_x").T)
    torch.testing.assert_close(kernel("box_blur", torch.float64) * 9, torch.ones(3, 3, dtype=torch.float64))
    assert set(list_kernels()) == set(KERNELS)


def test_unknown_kernel_message():
    with pytest.raises(CnnplError) as err:
        kernel("sharp")
    assert str(err.value) == f"unknown kernel 'sharp'; did you mean 'sharpen'? Available: {', '.join(KERNELS)}"
    with pytest.raises(CnnplError) as err:  # helper-131: "unknown kernel 'bogus' Available: ...", no separator
        kernel("bogus")
    assert str(err.value) == f"unknown kernel 'bogus'. Available: {', '.join(KERNELS)}"
    with pytest.raises(CnnplError, match="unknown kernel 'sobel_z'"):
        apply_kernels(torch.zeros(1, 1, 4, 4), ["sobel_x", "sobel_z"])


@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("padding", ["same", "valid", "full"])
def test_apply_kernels_is_per_channel_correlation(name, padding):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6))
    out = apply_kernels(torch.from_numpy(x), [name], padding=padding)[name].numpy()
    k = np.array(KERNELS[name])
    mode = {"same": "same", "valid": "valid", "full": "full"}[padding]
    expect = np.stack([np.stack([signal.correlate2d(x[n, c], k, mode=mode) for c in range(3)]) for n in range(2)])
    np.testing.assert_allclose(out, expect, atol=1e-12)


def test_apply_kernels_options():
    image = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)  # one uint8 image
    out = apply_kernels(image)
    assert list(out) == list(KERNELS) and all(
        v.shape == (1, 3, 8, 8) and v.dtype == torch.float32 for v in out.values()
    )
    gray = apply_kernels(image, ["edge", "sharpen"], grayscale=True)
    assert list(gray) == ["edge", "sharpen"]
    mean = image.float().mean(0, keepdim=True)[None]
    torch.testing.assert_close(gray["edge"], apply_kernels(mean, ["edge"])["edge"])
    with pytest.raises(
        CnnplError, match=r"apply_kernels wants images \(N, C, H, W\) or \(C, H, W\), got shape \(8, 8\)"
    ):
        apply_kernels(torch.zeros(8, 8))
    with pytest.raises(CnnplError, match="a 3x3 kernel does not fit 2x2 images with padding='valid'"):
        apply_kernels(torch.zeros(1, 1, 2, 2), padding="valid")


def test_what_each_filter_does():
    flat = torch.full((1, 1, 6, 6), 5.0)
    inside = (slice(None), slice(None), slice(1, -1), slice(1, -1))  # away from the zero padding
    for name in ("edge", "vertical_edge", "horizontal_edge", "sobel_x", "sobel_y"):
        assert apply_kernels(flat, [name])[name][inside].abs().max() == 0  # no edges in a flat image
    for name in ("box_blur", "sharpen"):  # weights sum to one: a flat image passes through
        torch.testing.assert_close(apply_kernels(flat, [name])[name][inside], flat[inside])
    step = torch.zeros(1, 1, 5, 6)
    step[..., :3] = 1.0  # bright left half, dark right half: a vertical edge
    v, h = (apply_kernels(step, [n], padding="valid")[n] for n in ("vertical_edge", "horizontal_edge"))
    assert v[0, 0, :, 1].tolist() == [3.0] * 3 and v[0, 0, :, 0].tolist() == [0.0] * 3 and h.abs().max() == 0
    assert apply_kernels(step.transpose(-1, -2), ["horizontal_edge"], padding="valid")["horizontal_edge"].max() == 3.0


def test_the_notes_example_through_apply_kernels():
    image = torch.tensor(NOTES_IMAGE, dtype=torch.float64)[None, None]
    assert apply_kernels(image, ["vertical_edge"], padding="valid")["vertical_edge"][0, 0, 0, 0].item() == 6


def test_init_conv_weight_replicates_over_channels():
    w = torch.empty(4, 3, 3, 3)
    init_conv_weight_(w, "sobel_y")
    torch.testing.assert_close(w, (kernel("sobel_y") / 3).expand(4, 3, 3, 3))
    # on a gray image copied into RGB, every filter gives the kernel's response on the gray image
    gray = torch.rand(1, 1, 6, 6)
    out = torch.nn.functional.conv2d(gray.expand(-1, 3, -1, -1), w, padding=1)
    for o in range(4):
        torch.testing.assert_close(out[:, o : o + 1], apply_kernels(gray, ["sobel_y"])["sobel_y"])
    with pytest.raises(CnnplError, match=r"tiled: init='edge' is a 3x3 kernel and cannot be centred in a 2x2"):
        init_conv_weight_(torch.empty(1, 1, 2, 2), "edge", what="tiled")


def test_command_prints_each_kernel(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(f"\n{name}\n" in out for name in KERNELS)
    assert "  1.00   0.00  -1.00   ->     6.00" in out  # the notes' 6 on the first row of vertical_edge


def test_command_shows_the_kernels_named_and_refuses_an_unknown_one(capsys):
    # every argument was ignored: --help, a typo and a name all printed the whole table
    assert main(["sobel_x"]) == 0
    out = capsys.readouterr().out
    assert "\nsobel_x\n" in out and not any(f"\n{name}\n" in out for name in KERNELS if name != "sobel_x")
    assert main(["sobelx"]) == 2
    assert capsys.readouterr().err == (
        "cnnpl.kernels: error: unknown kernel 'sobelx'; did you mean 'sobel_x' or 'sobel_y'? Available: box_blur, "
        "sharpen, edge, vertical_edge, horizontal_edge, sobel_x, sobel_y\n"
    )
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("usage: python -m cnnpl.kernels")


@pytest.mark.slow  # fresh interpreters
@pytest.mark.parametrize(
    "command",
    [
        ["cnnpl.kernels"],
        ["cnnpl", "--help"],
        ["cnnpl.summary", "model=resnet50"],
        ["cnnpl", "--cfg", "job"],
        ["cnnpl", "--info"],
        ["cnnpl", "-cjob"],  # attached, as Hydra takes it too
    ],
)
def test_a_reader_that_stops_early_gets_no_traceback(command: list[str]) -> None:
    """``python -m cnnpl --help | head -1``: the pipe closed before the command wrote (a traceback before)."""
    proc = subprocess.Popen([sys.executable, "-m", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # long before the interpreter has started and written a line
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()


@pytest.mark.slow  # a fresh interpreter, as the docs run it
def test_command_runs_without_a_runpy_warning(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run(
        [sys.executable, "-W", "default", "-m", "cnnpl.kernels"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "  1.00   0.00  -1.00   ->     6.00" in done.stdout
    assert done.stderr == ""


def test_training_from_one_kernel_in_every_filter_is_warned_about_unless_frozen(caplog) -> None:
    # helper-126: conv.init=sobel_x alone left one distinct filter a layer (shapes: 97% -> 39%)
    import cnnpl
    from cnnpl.network import build_model, warn_identical_filters

    def built(*overrides: str) -> torch.nn.Module:
        return build_model(cnnpl.compose(["conv.init=sobel_x", *overrides]), 10, 3, (32, 32))

    net = built()
    with caplog.at_level("WARNING", logger="cnnpl.train"):
        warn_identical_filters(net)
        warn_identical_filters(built("conv.freeze=true"))  # a fixed bank of Sobel filters: meant
        warn_identical_filters(build_model(cnnpl.compose([]), 10, 3, (32, 32)))
    assert [r.getMessage() for r in caplog.records] == [
        "conv.init=sobel_x starts every filter of a layer the same, and filters that start the same are trained the "
        "same: each conv layer before the last learns one filter; add conv.freeze=true for a fixed bank of sobel_x "
        "filters, or leave conv.init out to train filters of their own"
    ]
    first = net.features.block1.conv.weight
    assert all(torch.equal(first[0], first[i]) for i in range(len(first)))  # what the warning says
