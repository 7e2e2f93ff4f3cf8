"""Fuzzing of ``unity-sb3 inspect-model`` with truncated and corrupted .onnx files (a
fixed-seed slice of ``bench/fuzz.py``; see tests/fuzzing.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")

from hypothesis import given

from tests import fuzzing
from tests.fuzzing import ci_settings


@ci_settings(100)
@given(fuzzing.onnx_inputs())
def test_mutated_onnx_files_are_inspected_or_refused_in_one_paragraph(
    value: fuzzing.OnnxInput,
) -> None:
    fuzzing.check_onnx(value)
