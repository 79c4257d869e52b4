"""Mixed precision of the fine-tuning loop: what `auto` picks; bf16 on a CPU exports fp32 weights."""

import json
import subprocess

import pytest
import torch

from .conftest import cli_args, run_train_cli, tiny_train_config


def test_auto_precision_is_bf16_where_the_hardware_multiplies_bf16(monkeypatch):
    from fintag.train import loop

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: False)
    assert loop.resolve_mixed_precision("auto") == "no"
    assert loop.resolve_mixed_precision("bf16") == "bf16"
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: True)
    assert loop.resolve_mixed_precision("auto") == "bf16"
    assert loop.resolve_mixed_precision("no") == "no"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert loop.resolve_mixed_precision("auto") == "no"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert loop.resolve_mixed_precision("auto") == "bf16"


def test_native_bf16_probe_follows_the_cpu_flags():
    """The probe agrees with what the kernel reports for this CPU (avx512_bf16 or amx_tile)."""
    from fintag.train.loop import cpu_has_native_bf16

    flags = set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    if not flags:
        pytest.skip("no CPU flags in /proc/cpuinfo")
    assert cpu_has_native_bf16() == bool({"avx512_bf16", "amx_tile"} & flags)


def test_bf16_training_on_cpu_autocasts_and_exports_fp32_weights(tmp_path, mini_dataset):
    """Each precision in its own process: accelerate fixes it once per process."""
    from safetensors.torch import load_file

    runs = {}
    for precision in ("no", "bf16"):
        cfg = tiny_train_config(mini_dataset, tmp_path / precision, mixed_precision=precision, epochs=1)
        proc = run_train_cli(cli_args(cfg), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
        runs[precision] = load_file(tmp_path / precision / "model" / "model.safetensors")
        summary = json.loads((tmp_path / precision / "model" / "training_summary.json").read_text())
        assert summary["mixed_precision"] == precision
        card = (tmp_path / precision / "model" / "README.md").read_text()
        assert f"precision: {'fp32' if precision == 'no' else 'bf16'}" in card
    fp32, bf16 = runs["no"], runs["bf16"]
    assert {t.dtype for t in bf16.values()} == {torch.float32}
    key = "classifier.weight"
    # Same seed, same batches: only the autocast forward differs, so the weights differ a little.
    diff = (fp32[key] - bf16[key]).abs().max().item()
    assert 0 < diff < 0.05
