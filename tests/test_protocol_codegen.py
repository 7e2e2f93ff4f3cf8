"""The committed generated code matches the .proto files and loads on protobuf 6.31+ and 7."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from tests.conftest import REPO

pytestmark = pytest.mark.protocol

PACKAGE_DIR = REPO / "unity_gym" / "communicator_objects"
sys.path.insert(0, str(PACKAGE_DIR))
import regenerate


def _committed(proto: Path) -> descriptor_pb2.FileDescriptorProto:
    module = importlib.import_module(f"unity_gym.communicator_objects.{proto.stem}_pb2")
    fd = descriptor_pb2.FileDescriptorProto()
    fd.ParseFromString(module.DESCRIPTOR.serialized_pb)
    return fd


def _without_json_names(
    fd: descriptor_pb2.FileDescriptorProto,
) -> descriptor_pb2.FileDescriptorProto:
    """protoc adds derived json_name entries to descriptor sets; generated code omits them."""

    def strip(message: descriptor_pb2.DescriptorProto) -> None:
        for field in message.field:
            field.ClearField("json_name")
        for nested in message.nested_type:
            strip(nested)

    for message in fd.message_type:
        strip(message)
    return fd


def test_committed_descriptors_match_proto_sources(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (dev extra) compiles the protos")
    from grpc_tools import protoc

    include = Path(protoc.__file__).resolve().parent / "_proto"
    out = tmp_path / "set.pb"
    protos = [str(p.relative_to(REPO)) for p in regenerate.proto_files()]
    assert (
        protoc.main(["protoc", f"-I{REPO}", f"-I{include}", f"--descriptor_set_out={out}", *protos])
        == 0
    )
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    by_name = {fd.name: _without_json_names(fd) for fd in fresh.file}
    for proto in regenerate.proto_files():
        name = str(proto.relative_to(REPO))
        assert _committed(proto) == by_name[name], (
            f"{proto.stem}_pb2.py is stale: run unity_gym/communicator_objects/regenerate.py"
        )


def _floor(requirement_name: str) -> tuple[int, ...]:
    # A regex, not tomllib: the protocol tests also run on Python 3.10.
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(rf'"{requirement_name}>=([\d.]+)', text)
    assert match, requirement_name
    return tuple(int(x) for x in match.group(1).split("."))


def test_gencode_version_is_within_supported_protobuf_floor() -> None:
    """Generated code refuses runtimes older than its protoc, so it must not exceed our floor."""
    floor = _floor("protobuf")
    for generated in PACKAGE_DIR.glob("*_pb2.py"):
        call = re.search(
            r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+)",
            generated.read_text(),
        )
        assert call, generated
        version = tuple(int(x) for x in call.groups())
        assert version[:2] <= floor[:2], (
            f"{generated.name} needs protobuf {version}, floor is {floor}"
        )


def test_grpc_code_targets_supported_grpcio_floor() -> None:
    text = (PACKAGE_DIR / "unity_to_external_pb2_grpc.py").read_text()
    match = re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", text)
    assert match
    assert tuple(int(x) for x in match.group(1).split(".")) <= _floor("grpcio")
    assert "'/communicator_objects.UnityToExternalProto/Exchange'" in text


def test_wire_names_match_ml_agents() -> None:
    """Package, message names and the gRPC method path are what Unity's C# code uses."""
    from unity_gym.communicator_objects import unity_message_pb2, unity_to_external_pb2

    assert unity_message_pb2.UnityMessageProto.DESCRIPTOR.full_name == (
        "communicator_objects.UnityMessageProto"
    )
    service = unity_to_external_pb2.DESCRIPTOR.services_by_name["UnityToExternalProto"]
    assert service.full_name == "communicator_objects.UnityToExternalProto"
    assert [m.name for m in service.methods] == ["Exchange"]
