"""Merged weights of every LyCORIS algorithm equal the ``lycoris_lora`` package's own merge."""

import pytest
import torch

from diffusion.lora.loader import load_lora
from diffusion.lora.tiny import _module_tensors

lycoris = pytest.importorskip("lycoris.modules")

# format → LyCORIS module class that owns it
MODULES = {
    "kohya": lycoris.LoConModule,
    "locon": lycoris.LoConModule,
    "dora": lycoris.LoConModule,
    "loha": lycoris.LohaModule,
    "loha-tucker": lycoris.LohaModule,
    "lokr": lycoris.LokrModule,
    "lokr-factorised": lycoris.LokrModule,
    "lokr-tucker": lycoris.LokrModule,
    "ia3": lycoris.IA3Module,
    "glora": lycoris.GLoRAModule,
    "oft": lycoris.DiagOFTModule,
    "boft": lycoris.ButterflyOFTModule,
    "diff": lycoris.FullModule,
}
SHAPES = {"linear": (64, 32), "conv": (32, 16, 3, 3)}


def _layer(shape, generator):
    layer = torch.nn.Linear(shape[1], shape[0]) if len(shape) == 2 else torch.nn.Conv2d(shape[1], shape[0], shape[2])
    with torch.no_grad():
        layer.weight.copy_(torch.randn(shape, generator=generator) * 0.2)
    return layer


def _reference(fmt, name, tensors, layer, multiplier):
    if fmt.startswith(("loha", "lokr")):
        # lycoris 4.1.3's LohaModule/LokrModule merges apply alpha/rank twice (get_weight and
        # get_diff_weight both scale); its functional API applies it once, as the format defines.
        return layer.weight + multiplier * _functional_delta(fmt, tensors, layer.weight.shape)
    if fmt == "diff":
        return layer.weight + multiplier * tensors["diff"]
    module_class = MODULES[fmt]
    state = {f"{name}.{part}": value for part, value in tensors.items()}
    weights = module_class.extract_state_dict(state, name)
    with torch.no_grad():
        if fmt == "ia3":  # its make_module_from_state_dict drops on_input
            module = module_class(name, layer, 1, train_on_input=bool(tensors["on_input"]))
            module.weight.copy_(tensors["weight"].reshape(module.weight.shape))
        else:
            module = module_class.make_module_from_state_dict(name, layer, *weights)
        merged, _ = module.get_merged_weight(multiplier=multiplier, shape=layer.weight.shape)
    return merged.reshape(layer.weight.shape)


def _functional_delta(fmt, t, shape):
    from lycoris.functional import loha, lokr
    from lycoris.functional.general import rebuild_tucker

    alpha = float(t.get("alpha", 0.0))
    if fmt.startswith("loha"):
        rank = t["hada_w1_b"].shape[0]
        parts = (t["hada_w1_b"], t["hada_w1_a"], t["hada_w2_b"], t["hada_w2_a"], t.get("hada_t1"), t.get("hada_t2"))
        return loha.diff_weight(*parts, gamma=alpha / rank).reshape(shape)
    if fmt == "lokr-tucker" and "lokr_t2" in t:  # the functional's rank lookup assumes the non-Tucker layout
        w2 = rebuild_tucker(t["lokr_t2"], t["lokr_w2_a"], t["lokr_w2_b"])
        w1 = t["lokr_w1"].reshape(*t["lokr_w1"].shape, *[1] * (w2.dim() - 2))
        return torch.kron(w1, w2.contiguous()) * (alpha / t["lokr_t2"].shape[0])
    names = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2")
    parts = [t.get(n) for n in names]
    if parts[4] is not None and parts[5].dim() > 2:  # conv w2_b is stored flat by LyCORIS
        parts[5] = parts[5].flatten(1)
    gamma = alpha if "alpha" in t else 1.0
    out = lokr.diff_weight(*parts, gamma=gamma)
    return out.reshape(shape)


def _incompatible(fmt, kind):
    # (IA)³ on_input and Tucker forms are written per layer kind by the generator; all others both.
    return fmt in ("loha-tucker", "lokr-tucker") and kind == "linear"


@pytest.mark.parametrize("kind", sorted(SHAPES))
@pytest.mark.parametrize("fmt", sorted(MODULES))
def test_merged_weight_equals_lycoris(fmt, kind):
    if _incompatible(fmt, kind):
        pytest.skip("Tucker forms exist only for convolutions")
    generator = torch.Generator().manual_seed(hash((fmt, kind)) % 2**31)
    shape = SHAPES[kind]
    layer = _layer(shape, generator)
    name = "lora_unet_block"
    tensors = _module_tensors(fmt, shape, 4, generator)
    patches, unused = load_lora({f"{name}.{k}": v for k, v in tensors.items()}, {name: "w.weight"})
    assert unused == [] and list(patches) == ["w.weight"]
    adapter = patches["w.weight"]
    assert adapter.fits(torch.Size(shape))
    strengths = (1.0,) if fmt == "dora" else (1.0, 0.6)  # DoRA blends by strength as ComfyUI does
    for strength in strengths:
        ours = adapter.calculate_weight(layer.weight.detach().clone(), "w.weight", strength, 1.0, None, None)
        expected = _reference(fmt, name, tensors, layer, strength)
        torch.testing.assert_close(ours, expected.float(), atol=1e-5, rtol=1e-4)
        assert not torch.equal(ours, layer.weight), "the patch must change the weight"


def test_dora_strength_blends_between_the_weight_and_the_decomposed_weight():
    generator = torch.Generator().manual_seed(3)
    layer = _layer((64, 32), generator)
    tensors = _module_tensors("dora", (64, 32), 4, generator)
    patches, _ = load_lora({f"m.{k}": v for k, v in tensors.items()}, {"m": "w.weight"})
    weight = layer.weight.detach()
    full = patches["w.weight"].calculate_weight(weight.clone(), "w", 1.0, 1.0, None, None)
    half = patches["w.weight"].calculate_weight(weight.clone(), "w", 0.5, 1.0, None, None)
    torch.testing.assert_close(half, weight + 0.5 * (full - weight))
    zero = patches["w.weight"].calculate_weight(weight.clone(), "w", 0.0, 1.0, None, None)
    torch.testing.assert_close(zero, weight)
