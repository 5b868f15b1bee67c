"""--precision auto on a CPU: bf16 only where a probe of the model's layers measures it faster
than float32 (b2v_rnn.inference), cached per machine, torch, thread count and model.

Every decision here comes from faked timings; the one real probe only has to return a ratio."""
import json
import math

import pytest
import torch

from b2v_rnn import predict
from b2v_rnn.inference import precision as inference
from b2v_rnn.checkpoint import save_checkpoint
from b2v_rnn.inference.precision import (PROBE_BATCH, PROBE_LAYERS, PROBE_ROUNDS, PROBE_SIZE, cache_path,
                               measure_bf16_speedup, probe_layers, resolve_precision, settings_for)
from b2v_rnn.models import build_model
from b2v_rnn.ops import PreActDilatedConv2d

CPU = torch.device("cpu")
TINY = build_model("tiny")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A CPU with native bf16, an idle machine and a cache file of the test's own."""
    path = tmp_path / "cache" / "precision.json"
    monkeypatch.setenv("B2V_PRECISION_CACHE", str(path))
    monkeypatch.setattr(inference, "native_bf16_cpu", lambda: True)
    monkeypatch.setattr(inference, "busy_load", lambda: None)
    return path


@pytest.fixture
def measured(monkeypatch):
    """``measured(speedup)``: the probe returns ``speedup``; returns the list of its calls."""

    def use(speedup):
        calls = []

        def fake(layers):
            calls.append(layers)
            return speedup

        monkeypatch.setattr(inference, "measure_bf16_speedup", fake)
        return calls

    return use


def no_measuring(layers):
    raise AssertionError("measured where nothing should be measured")


@pytest.mark.parametrize("speedup, precision, why", [
    (1.6, "bf16", "measured 1.60x fp32 here"),
    (1.1, "bf16", "measured 1.10x fp32 here"),
    (1.05, "fp32", "bf16 measured 1.05x here"),  # within noise: fp32 is the safe side
    (0.7, "fp32", "bf16 measured 0.70x here"),
])
def test_auto_takes_bf16_only_when_measured_faster(cache, measured, speedup, precision, why):
    calls = measured(speedup)
    assert resolve_precision("auto", CPU, TINY) == (precision, why)
    assert len(calls) == 1 and [module for module, _ in calls[0]] == [m for m, _ in probe_layers(TINY)]
    cache.unlink()
    settings = settings_for(CPU, "auto", model=TINY)
    assert settings.precision == precision
    assert settings.describe() == f"cpu, {precision} ({why}), channels_last"


def test_no_native_bf16_is_fp32_without_probing(cache, monkeypatch):
    monkeypatch.setattr(inference, "native_bf16_cpu", lambda: False)
    monkeypatch.setattr(inference, "measure_bf16_speedup", no_measuring)
    assert resolve_precision("auto", CPU, TINY) == ("fp32", "no native bf16 on this CPU")
    assert not cache.exists()


def test_cuda_and_explicit_precisions_are_taken_unmeasured(cache, monkeypatch):
    monkeypatch.setattr(inference, "measure_bf16_speedup", no_measuring)
    assert resolve_precision("auto", torch.device("cuda"), TINY) == ("fp32", "")  # not measured on a GPU yet
    assert resolve_precision("fp32", CPU, TINY) == ("fp32", "")
    assert resolve_precision("bf16", CPU, TINY) == ("bf16", "")
    assert settings_for(CPU, "fp32", amp=True, model=TINY).describe() == "cpu, bf16, channels_last"  # --amp
    assert settings_for(CPU, "fp32", model=TINY).describe() == "cpu, fp32, channels_last"
    with pytest.raises(ValueError, match="precision must be one of .*'half'"):
        resolve_precision("half", CPU, TINY)
    assert not cache.exists()


def test_the_speedup_is_cached_and_reused(cache, measured):
    calls = measured(1.6)
    assert resolve_precision("auto", CPU, TINY)[0] == "bf16"
    entries = json.loads(cache.read_text())["entries"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["speedup"] == 1.6 and entry["torch"] == torch.__version__
    assert entry["threads"] == torch.get_num_threads()
    assert entry["layers"] == [f"{n} x {m!r}" for m, n in probe_layers(TINY)]
    assert resolve_precision("auto", CPU, TINY) == ("bf16", f"measured 1.60x fp32 here; cached in {cache}")
    assert len(calls) == 1


def test_another_torch_thread_count_or_model_measures_again(cache, measured, monkeypatch):
    calls = measured(1.6)
    resolve_precision("auto", CPU, TINY)
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    resolve_precision("auto", CPU, TINY)
    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads + 1)
    resolve_precision("auto", CPU, TINY)
    resolve_precision("auto", CPU, build_model("small"))
    assert len(calls) == 4
    resolve_precision("auto", CPU, TINY)  # each is cached beside the others
    resolve_precision("auto", CPU, build_model("small"))
    assert len(calls) == 4
    assert len(json.loads(cache.read_text())["entries"]) == 4


def test_without_a_model_the_paper_presets_layers_are_measured(cache, measured):
    calls = measured(1.6)
    resolve_precision("auto", CPU)
    assert [repr(m) for m, _ in calls[0]] == [repr(m) for m, _ in probe_layers(build_model("paper"))]


@pytest.mark.parametrize("content", [b"{not json", b'{"entries": 3}', b"[]", b"\xff\xfe", b'{"entries": [1]}'])
def test_a_corrupt_cache_costs_a_note_and_a_new_measurement(cache, measured, capsys, content):
    calls = measured(0.7)
    cache.parent.mkdir()
    cache.write_bytes(content)
    assert resolve_precision("auto", CPU, TINY) == ("fp32", "bf16 measured 0.70x here")
    assert len(calls) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"note: precision cache {cache} is unreadable") and "Traceback" not in err
    assert [e["speedup"] for e in json.loads(cache.read_text())["entries"]] == [0.7]  # repaired


@pytest.mark.parametrize("speedup", ["fast", None, float("nan"), -1.0])
def test_a_cached_entry_without_a_usable_speedup_is_measured_again(cache, measured, speedup):
    calls = measured(1.6)
    resolve_precision("auto", CPU, TINY)
    data = json.loads(cache.read_text())
    data["entries"][0]["speedup"] = speedup
    cache.write_text(json.dumps(data))
    assert resolve_precision("auto", CPU, TINY) == ("bf16", "measured 1.60x fp32 here")
    assert len(calls) == 2
    assert [e["speedup"] for e in json.loads(cache.read_text())["entries"]] == [1.6]  # replaced, not added


def test_an_unwritable_cache_costs_a_note(tmp_path, monkeypatch, measured, capsys):
    monkeypatch.setattr(inference, "native_bf16_cpu", lambda: True)
    monkeypatch.setattr(inference, "busy_load", lambda: None)
    (tmp_path / "a_file").write_text("")
    path = tmp_path / "a_file" / "precision.json"  # its folder cannot be made, even by root
    monkeypatch.setenv("B2V_PRECISION_CACHE", str(path))
    calls = measured(1.6)
    assert resolve_precision("auto", CPU, TINY) == ("bf16", "measured 1.60x fp32 here")
    assert resolve_precision("auto", CPU, TINY)[0] == "bf16"
    assert len(calls) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"note: could not write the precision cache {path}") and "Traceback" not in err


def test_off_measures_every_run_and_writes_nothing(tmp_path, monkeypatch, measured):
    monkeypatch.setattr(inference, "native_bf16_cpu", lambda: True)
    monkeypatch.setattr(inference, "busy_load", lambda: None)
    monkeypatch.setenv("B2V_PRECISION_CACHE", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = measured(1.6)
    resolve_precision("auto", CPU, TINY)
    resolve_precision("auto", CPU, TINY)
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_a_measurement_on_a_busy_machine_serves_its_run_only(cache, measured, monkeypatch):
    monkeypatch.setattr(inference, "busy_load", lambda: 3.2)
    calls = measured(1.6)
    assert resolve_precision("auto", CPU, TINY) == ("bf16", "measured 1.60x fp32 here, under load 3.2: not cached")
    assert not cache.exists()
    resolve_precision("auto", CPU, TINY)
    assert len(calls) == 2


def test_the_default_cache_follows_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("B2V_PRECISION_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_path() == tmp_path / "xdg" / "b2v_rnn" / "precision.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_path() == tmp_path / "home" / ".cache" / "b2v_rnn" / "precision.json"


def test_probe_layers_are_the_models_heaviest_distinct_convolutions():
    model = build_model("paper")
    layers = probe_layers(model)
    assert len(layers) == PROBE_LAYERS
    weights = [count * module.weight.numel() for module, count in layers]
    assert weights == sorted(weights, reverse=True)
    convs = [m for m in model.modules() if isinstance(m, (PreActDilatedConv2d, torch.nn.Conv2d))]
    heaviest = max(len([c for c in convs if repr(c) == repr(m)]) * m.weight.numel() for m in convs)
    assert weights[0] == heaviest
    for module, count in layers:
        assert count == sum(repr(c) == repr(module) for c in convs)
    assert len({repr(m) for m, _ in layers}) == len(layers)
    assert repr(layers[0][0]) == "PreActDilatedConv2d(144, 144, kernel=(3, 3), dilation=1, padding=1)"
    assert probe_layers(torch.nn.Sequential(torch.nn.ReLU())) == []


def test_a_model_without_convolutions_keeps_fp32(cache, monkeypatch):
    monkeypatch.setattr(inference, "measure_bf16_speedup", no_measuring)
    assert resolve_precision("auto", CPU, torch.nn.Sequential(torch.nn.ReLU()))[0] == "fp32"


def test_each_layer_keeps_its_best_of_interleaved_rounds(monkeypatch):
    """A fake clock advanced only by the timed calls: fp32 takes 2 s and bf16 1 s on the first
    layer, 3 s and 4 s on the second; the first timed bf16 call of each layer is hit by 100 s of
    a neighbour's load. The best rounds, weighted 3:1 by count, give (3·2 + 3) / (3·1 + 4)."""
    monkeypatch.setattr(inference, "PROBE_SECONDS", 0.0)
    first = PreActDilatedConv2d(8, 8, 3, bias=False)
    second = torch.nn.Conv2d(4, 4, 1)
    cost = {(0, False): 2.0, (0, True): 1.0, (1, False): 3.0, (1, True): 4.0}
    now = [0.0]
    calls = []

    def run(module, x, bf16):
        layer = 0 if isinstance(module, PreActDilatedConv2d) else 1
        assert module is not (first, second)[layer]  # a copy: the model's module stays as it was
        assert module.weight.is_contiguous(memory_format=torch.channels_last)
        assert x.shape == (PROBE_BATCH, (8, 4)[layer], PROBE_SIZE, PROBE_SIZE)
        assert x.is_contiguous(memory_format=torch.channels_last)
        calls.append((layer, bf16))
        timed_bf16 = [c for c in calls[4:] if c == (layer, True)]
        now[0] += cost[layer, bf16] + (100.0 if bf16 and len(timed_bf16) == 1 else 0.0)

    speedup = measure_bf16_speedup([(first, 3), (second, 1)], run=run, clock=lambda: now[0])
    assert speedup == pytest.approx((3 * 2 + 3) / (3 * 1 + 4))
    rounds = PROBE_ROUNDS[0]
    assert len(calls) == 4 + 4 * rounds  # one untimed warm-up per layer and precision
    timed = [bf16 for _, bf16 in calls[4:]]
    orders = [tuple(timed[4 * r:4 * r + 4]) for r in range(rounds)]
    assert orders[0] == (False, False, True, True) and orders[1] == (True, True, False, False)


def test_the_real_probe_gives_a_ratio_on_this_cpu():
    speedup = measure_bf16_speedup(probe_layers(TINY))
    assert math.isfinite(speedup) and speedup > 0


def test_predict_measures_the_loaded_model_and_says_why(cache, measured, tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model("tiny")
    checkpoint = tmp_path / "tiny.pt"
    save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": 3}, checkpoint)
    from PIL import Image

    Image.new("RGB", (24, 20), (90, 120, 30)).save(tmp_path / "flat.png")
    calls = measured(0.7)
    predict.main([str(tmp_path / "flat.png"), "--T", "3", "--out", str(tmp_path / "out"),
                  "--checkpoint", str(checkpoint), "--device", "cpu"])
    assert "cpu, fp32 (bf16 measured 0.70x here), channels_last | ops:" in capsys.readouterr().out
    assert [repr(m) for m, _ in calls[0]] == [repr(m) for m, _ in probe_layers(model)]
