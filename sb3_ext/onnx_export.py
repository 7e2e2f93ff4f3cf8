"""Export SB3 policies as ONNX files Unity's inference engine runs like ML-Agents models.

:func:`export_onnx` writes a PPO / A2C / SAC / RecurrentPPO / MaskablePPO / DiscreteSAC policy
with exactly the tensors ``mlagents-learn`` (release 21) exports, so a Unity
``BehaviorParameters`` component takes it as its model; :func:`inspect_onnx` and
:func:`check_against_spec` read any such file (ours or ML-Agents') and list what keeps it from
driving a behavior. See ``docs/export.md``.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy

from sb3_ext.onnx_interface import (
    ACTION_MASKS,
    CONTINUOUS_ACTION_OUTPUT_SHAPE,
    CONTINUOUS_ACTIONS,
    DETERMINISTIC_CONTINUOUS_ACTIONS,
    DETERMINISTIC_DISCRETE_ACTIONS,
    DISCRETE_ACTION_OUTPUT_SHAPE,
    DISCRETE_ACTIONS,
    MEMORY_SIZE,
    RECURRENT_IN,
    RECURRENT_OUT,
    VERSION_NUMBER,
    ModelInterface,
    TensorInfo,
    check_against_spec,
    inspect_onnx,
    observation_name,
)
from sb3_ext.onnx_policy_graph import Normalization, PolicyGraph, build_policy_graph
from unity_gym.base_env import BehaviorSpec

__all__ = [
    "DEFAULT_OPSET",
    "EXPORT_OPSETS",
    "ModelInterface",
    "TensorInfo",
    "check_against_spec",
    "export_onnx",
    "inspect_onnx",
]

DEFAULT_OPSET = 9  # what mlagents-learn exports (SerializationSettings.onnx_opset)
EXPORT_OPSETS = range(9, 16)
BATCH = "batch"

# Messages torch prints while tracing that say nothing about the exported graph: the legacy
# exporter's deprecation notice, nn.LSTM's argument checks and its batch-size advice (the
# states are graph inputs here, which is what that advice asks for).
_EXPORT_NOISE = (
    (DeprecationWarning, r"You are using the legacy TorchScript-based ONNX export"),
    (DeprecationWarning, r"The feature will be removed"),
    (torch.jit.TracerWarning, r"Converting a tensor to a Python boolean"),
    (UserWarning, r"Exporting a model to ONNX with a batch_size other than 1"),
)


def _io_names(graph: PolicyGraph) -> tuple[list[str], list[str]]:
    inputs = [observation_name(i) for i in range(graph.num_observations)]
    outputs = [VERSION_NUMBER, MEMORY_SIZE]
    if graph.discrete:
        inputs.append(ACTION_MASKS)
        outputs += [DISCRETE_ACTIONS, DISCRETE_ACTION_OUTPUT_SHAPE, DETERMINISTIC_DISCRETE_ACTIONS]
    else:
        outputs += [
            CONTINUOUS_ACTIONS,
            CONTINUOUS_ACTION_OUTPUT_SHAPE,
            DETERMINISTIC_CONTINUOUS_ACTIONS,
        ]
    if graph.memory_size:
        inputs.append(RECURRENT_IN)
        outputs.append(RECURRENT_OUT)
    return inputs, outputs


def _dummy_inputs(
    graph: PolicyGraph, behavior_spec: BehaviorSpec, batch: int
) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    tensors = [
        torch.rand((batch, *spec.shape), generator=generator)
        for spec in behavior_spec.observation_specs
    ]
    if graph.discrete:
        tensors.append(torch.ones(batch, sum(behavior_spec.action_spec.discrete_branches)))
    if graph.memory_size:
        tensors.append(torch.rand((batch, 1, graph.memory_size), generator=generator) - 0.5)
    return tensors


def _verify(path: Path, graph: PolicyGraph, behavior_spec: BehaviorSpec) -> None:
    """Compare the file's deterministic outputs with the torch graph's on a batch of 3."""
    try:
        import onnxruntime
    except ImportError:  # optional dependency: the check is skipped without it
        return
    inputs = _dummy_inputs(graph, behavior_spec, batch=3)
    input_names, output_names = _io_names(graph)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {name: t.numpy() for name, t in zip(input_names, inputs, strict=True)}
    got = dict(zip(output_names, session.run(None, feed), strict=True))
    with torch.no_grad():
        want = dict(zip(output_names, graph(*inputs), strict=True))
    for name in output_names:
        if name in (CONTINUOUS_ACTIONS, DISCRETE_ACTIONS):
            continue  # sampled
        if not np.allclose(got[name], want[name].numpy(), rtol=1e-4, atol=1e-4):
            raise RuntimeError(
                f"The exported {path} disagrees with the policy on {name}; the policy's modules "
                "probably do something the ONNX trace cannot follow (data-dependent control flow)."
            )


_EXPORT_LOCK = threading.Lock()


def export_onnx(
    model: BaseAlgorithm | BasePolicy,
    behavior_spec: BehaviorSpec,
    path: str | os.PathLike[str],
    *,
    normalization: Normalization | None = None,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
) -> Path:
    """Write ``model``'s policy to ``path`` as an ML-Agents-compatible ONNX model.

    ``behavior_spec`` is the behavior the model was trained on (its spaces must be those
    :class:`unity_gym.spaces.SpaceConverter` gives it). ``normalization`` (a ``VecNormalize``,
    its ``obs_rms``, or a dict of them per observation key) is folded into the graph.
    ``opset`` 9 (mlagents-learn's) to 15. With ``verify`` and onnxruntime installed, the file's
    deterministic outputs are checked against the policy's. Returns the path written.
    """
    if opset not in EXPORT_OPSETS:
        raise ValueError(
            f"opset {opset} is not supported: use {EXPORT_OPSETS.start}-{EXPORT_OPSETS.stop - 1}."
        )
    graph = build_policy_graph(model, behavior_spec, normalization)
    input_names, output_names = _io_names(graph)
    batch_outputs = {CONTINUOUS_ACTIONS, DISCRETE_ACTIONS, RECURRENT_OUT}
    batch_outputs |= {DETERMINISTIC_CONTINUOUS_ACTIONS, DETERMINISTIC_DISCRETE_ACTIONS}
    dynamic_axes = {name: {0: BATCH} for name in input_names}
    dynamic_axes.update({name: {0: BATCH} for name in output_names if name in batch_outputs})
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = tuple(_dummy_inputs(graph, behavior_spec, batch=1))
    # torch's exporter keeps global state (and catch_warnings is process-wide): one at a time,
    # e.g. when two behaviors of one run finish together.
    with _EXPORT_LOCK, warnings.catch_warnings():
        for category, message in _EXPORT_NOISE:
            warnings.filterwarnings("ignore", message=message, category=category)
        with torch.no_grad():
            torch.onnx.export(
                graph,
                dummy,
                str(out),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
                external_data=False,
            )
    problems = check_against_spec(inspect_onnx(out), behavior_spec)
    if problems:
        raise RuntimeError(f"The exported {out} does not fit the behavior: {'; '.join(problems)}")
    if verify:
        _verify(out, graph, behavior_spec)
    return out
