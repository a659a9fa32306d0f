"""The model-file scanner finds every payload of a real corpus without loading anything, raises no
false alarm on real benign files, and agrees with fickling where fickling is certain."""

from __future__ import annotations

import json
import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from aisec.targets.file_scan import DENY, classify_global, pickle_globals, scan_model_path
from aisec.testing.model_files import build_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("corpus")
    return root, build_corpus(root)


def test_every_payload_is_found_and_no_benign_file_is_flagged(corpus) -> None:
    root, files = corpus
    assert sum(f.malicious for f in files) >= 13 and sum(not f.malicious for f in files) >= 9
    for f in files:
        report = scan_model_path(f.path)
        if f.malicious:
            assert report.count("high") >= 1, (f.name, report.findings)
        else:
            assert report.count("high") == 0, (f.name, report.findings)
    assert not (root / "marker").exists(), "scanning must never unpickle"


def test_payload_findings_name_the_gadget(corpus) -> None:
    root, _ = corpus
    r = scan_model_path(root / "poisoned_state_dict.pt")
    assert r.max_severity == "critical"
    assert any("posix.system" in f.summary or "os.system" in f.summary for f in r.findings)
    assert any(f.file.endswith("data.pkl") for f in r.findings)  # located inside the torch zip


def test_the_payload_behind_joblibs_raw_arrays_is_found(corpus) -> None:
    """joblib writes array bytes inside the pickle stream; opcode disassembly alone stops there."""
    root, _ = corpus
    r = scan_model_path(root / "poisoned.joblib")
    assert r.max_severity == "critical"


def test_agrees_with_fickling_where_fickling_is_certain(corpus) -> None:
    from fickling.analysis import Severity
    from fickling.loader import scan_file

    _, files = corpus
    for f in files:
        if f.kind != "pickle":
            continue
        fick = scan_file(str(f.path), graceful=True)
        if fick.severity >= Severity.LIKELY_OVERTLY_MALICIOUS:
            assert scan_model_path(f.path).max_severity == "critical", f.name


def test_globals_match_the_pickle_opcodes() -> None:
    data = pickle.dumps(OrderedDict(a=np.arange(3)))
    globs = pickle_globals(data)
    assert ("collections", "OrderedDict") in globs
    assert any(m.startswith("numpy") for m, _ in globs)
    assert all(classify_global(m, n) == "info" for m, n in globs)


class _Gadget:
    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __reduce__(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.name), ("x",)


@pytest.mark.parametrize("module,name", sorted((m, n) for m, n in DENY if m in ("builtins", "types", "functools")))
def test_each_denied_builtin_is_critical(tmp_path: Path, module: str, name: str) -> None:
    # hand-written protocol-0 pickle: GLOBAL module name, MARK, 'x', TUPLE, REDUCE, STOP
    data = f"c{module}\n{name}\n(S'x'\ntR.".encode()
    assert pickle_globals(data) == [(module, name)]
    (tmp_path / "g.pkl").write_bytes(data)
    assert scan_model_path(tmp_path / "g.pkl").max_severity == "critical"


benign = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    | st.tuples(inner, inner) | st.frozensets(st.integers(), max_size=3),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(obj=benign, protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_plain_data_pickles_never_raise_an_alarm(tmp_path_factory, obj, protocol) -> None:
    path = tmp_path_factory.mktemp("p") / "obj.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    assert scan_model_path(path).count("medium") == 0


@settings(max_examples=30, deadline=None)
@given(obj=benign, protocol=st.integers(2, pickle.HIGHEST_PROTOCOL), where=st.integers(0, 3))
def test_a_payload_anywhere_in_data_is_critical(tmp_path_factory, obj, protocol, where) -> None:
    payload = _Gadget("os", "system")
    wrapped = [obj, payload] if where == 0 else {"k": payload, "o": obj} if where == 1 else \
        (obj, (payload,)) if where == 2 else OrderedDict(a=obj, b=[payload])
    path = tmp_path_factory.mktemp("p") / "obj.pkl"
    path.write_bytes(pickle.dumps(wrapped, protocol=protocol))
    assert scan_model_path(path).max_severity == "critical"


def test_a_joblib_array_that_lies_about_its_shape_costs_no_memory(tmp_path: Path) -> None:
    import joblib

    path = tmp_path / "big.joblib"
    joblib.dump({"w": np.zeros((4, 4))}, path)
    data = path.read_bytes()
    # inflate the recorded shape (4, 4) -> (255, 255) in place (BININT1 4, BININT1 4, TUPLE2)
    assert data.count(b"K\x04K\x04\x86") == 1
    path.write_bytes(data.replace(b"K\x04K\x04\x86", b"K\xffK\xff\x86"))
    report = scan_model_path(path)  # the wrapper skips bytes instead of allocating what the file declares
    assert [f.kind for f in report.findings if f.severity == "medium"] == ["bad-header"]
    assert "remain" in report.findings[0].summary


def test_plain_and_object_npy(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(5))
    assert scan_model_path(tmp_path / "a.npy").findings == []
    arr = np.empty(1, dtype=object)
    arr[0] = _Gadget("os", "system")
    np.save(tmp_path / "o.npy", arr)
    assert scan_model_path(tmp_path / "o.npy").max_severity == "critical"


def test_safetensors_header_that_lies(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 10_000]}}).encode()
    (tmp_path / "w.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    r = scan_model_path(tmp_path / "w.safetensors")
    assert r.max_severity == "high" and "outside the file" in r.findings[0].summary
    (tmp_path / "x.safetensors").write_bytes(struct.pack("<Q", 10**12) + b"{}")
    assert scan_model_path(tmp_path / "x.safetensors").max_severity == "high"


def test_onnx_external_data_outside_the_folder(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    w = helper.make_tensor("W", TensorProto.FLOAT, [2], [0.0, 0.0])
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    w.ClearField("float_data")
    graph = helper.make_graph([helper.make_node("Identity", ["W"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [w])
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    r = scan_model_path(path)
    assert r.max_severity == "high" and any(f.kind == "external-data" for f in r.findings)
    assert onnx is not None


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    from aisec.core.errors import DataError

    with pytest.raises(DataError, match="not found"):
        scan_model_path(tmp_path / "nope.pt")


def test_cli_exit_codes_and_json(corpus) -> None:
    from aisec.cli.main import main

    root, _ = corpus
    res = CliRunner().invoke(main, ["model-scan", str(root / "state_dict.pt"), str(root / "weights.safetensors")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["model-scan", "--json", str(root / "os_system.pkl")])
    assert res.exit_code == 3
    doc = json.loads(res.output)
    assert doc[0]["max_severity"] == "critical" and doc[0]["unsafe"] == 1
    res = CliRunner().invoke(main, ["model-scan", "--fail-at", "critical", str(root / "remote_code_model")])
    assert res.exit_code == 0 and "auto_map" in res.output


def test_the_check_records_evidence_the_policy_gates(corpus) -> None:
    from aisec.checks.model_scan import ModelScanCheck, ModelScanParams

    root, _ = corpus
    res = ModelScanCheck().run(None, None, ModelScanParams(path=str(root / "poisoned_legacy.pt")))
    m = res.measurement("model_scan.unsafe_findings")
    assert m.value == 1.0 and res.warnings and res.threats == ("AML.T0011.000", "AML.T0010.003")
    assert set(res.tables["findings"]) == {"file", "severity", "kind", "summary", "detail"}


def test_a_policy_gates_model_file_vulnerabilities() -> None:
    from aisec.policy.rules import evaluate_policy, parse_policy
    from aisec.testing.evidence import fake_evidence

    policy = parse_policy({"rules": [{"metric": "modelFileVulnerabilities", "operator": "<=", "target": 0}]})
    bad = [fake_evidence("model_scan.unsafe_findings", 1.0, higher_is_better=False)]
    good = [fake_evidence("model_scan.unsafe_findings", 0.0, higher_is_better=False)]
    assert evaluate_policy(bad, policy).exit_code != 0
    assert evaluate_policy(good, policy).exit_code == 0
