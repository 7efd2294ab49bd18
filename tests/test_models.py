"""extensor.models: errors are worded for a library user (no command-line flags in them)."""

from __future__ import annotations

import pytest

from extensor.models import MLP, build_model


def test_cnn_on_flat_samples_names_the_shape_and_the_alternative_without_cli_flags() -> None:
    with pytest.raises(ValueError, match=r"got samples of shape \(2,\)") as caught:
        build_model("cnn", (2,), num_classes=3)
    assert "'mlp' model" in str(caught.value)
    assert "--" not in str(caught.value)
    assert isinstance(build_model("mlp", (2,), num_classes=3), MLP)


@pytest.mark.parametrize(
    ("name", "shape", "classes", "dropout", "message"),
    [
        ("resnet", (1, 8, 8), 10, 0.0, "unknown model 'resnet'"),
        ("mlp", (4,), 1, 0.0, "at least 2 classes, got 1"),
        ("mlp", (4,), 3, 1.0, r"dropout must be in \[0, 1\), got 1.0"),
        ("cnn", (1, 3, 3), 3, 0.0, "at least 4x4 pixels, got 3x3"),
    ],
)
def test_bad_arguments_are_named(
    name: str, shape: tuple[int, ...], classes: int, dropout: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        build_model(name, shape, classes, dropout=dropout)
    assert "--" not in str(caught.value)
