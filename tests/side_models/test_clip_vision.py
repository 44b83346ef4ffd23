"""CLIP vision towers in both distributed layouts equal transformers' CLIPVisionModelWithProjection;
stable unCLIP's y and UNet call equal diffusers' StableUnCLIP pipeline pieces; SDXL revision
replaces the pooled embedding with the image embeds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import CLIPVisionModelWithProjection

from diffusion.checkpoint import load_checkpoint
from diffusion.checkpoint.files import read_state_dict
from diffusion.checkpoint.tiny import write_tiny_checkpoint
from diffusion.clip_vision.encoder import clip_preprocess
from diffusion.clip_vision.loader import ClipVisionError, load_clip_vision, vision_config
from diffusion.clip_vision.tiny import tiny_hf_state_dict, tiny_vision_config
from diffusion.clip_vision.unclip import UNCLIP_SEED, add_unclip_conditioning
from diffusion.memory import ModelManager
from tests.models.diffusers_reference import diffusers_unet_config
from tools.make_tiny_clip_vision import write_tiny_clip_vision
from tools.make_tiny_unclip_checkpoint import EMBED, write_tiny_unclip_checkpoint


@pytest.fixture
def manager():
    return ModelManager("cpu")


def reference_tower(hidden_act: str, seed: int = 0, **changes: int) -> CLIPVisionModelWithProjection:
    model = CLIPVisionModelWithProjection(tiny_vision_config(hidden_act, **changes))
    model.load_state_dict(tiny_hf_state_dict(seed, hidden_act, **changes), strict=False)
    return model.eval()


@pytest.mark.parametrize("layout", ["hf", "open_clip"])
@pytest.mark.parametrize("hidden_act", ["gelu", "quick_gelu"])
def test_both_layouts_equal_transformers_clip_vision(layout, hidden_act, manager, tmp_path):
    path = write_tiny_clip_vision(tmp_path / f"{layout}.safetensors", layout, seed=3, hidden_act=hidden_act)
    ours = load_clip_vision(path, manager)
    image = torch.rand(2, 28, 28, 3, generator=torch.Generator().manual_seed(0))
    out = ours.encode_image(image)
    with torch.no_grad():
        ref = reference_tower(hidden_act, seed=3)(pixel_values=clip_preprocess(image, 28), output_hidden_states=True)
    assert out.image_embeds.shape == (2, 24) and out.image_embeds.abs().max() > 1e-2
    assert torch.allclose(out.image_embeds, ref.image_embeds, atol=1e-5)
    assert torch.allclose(out.last_hidden_state, ref.last_hidden_state, atol=1e-5)
    assert torch.allclose(out.penultimate_hidden_states, ref.hidden_states[-2], atol=1e-5)
    assert out["image_embeds"] is out.image_embeds  # ComfyUI's item access, used by node packs


def test_released_vit_l_shapes_give_openai_settings():
    meta = {
        "vision_model.embeddings.class_embedding": torch.empty(1024, device="meta"),
        "vision_model.embeddings.patch_embedding.weight": torch.empty(1024, 3, 14, 14, device="meta"),
        "vision_model.embeddings.position_embedding.weight": torch.empty(257, 1024, device="meta"),
        "vision_model.encoder.layers.0.mlp.fc1.weight": torch.empty(4096, 1024, device="meta"),
        "vision_model.encoder.layers.23.mlp.fc1.weight": torch.empty(4096, 1024, device="meta"),
        "visual_projection.weight": torch.empty(768, 1024, device="meta"),
    }
    config = vision_config(meta)
    assert (config.image_size, config.num_hidden_layers, config.num_attention_heads) == (224, 24, 16)
    assert (config.hidden_act, config.projection_dim) == ("quick_gelu", 768)


def test_center_crop_and_squash_differ_on_a_wide_image():
    image = torch.zeros(1, 28, 56, 3)
    image[:, :, :14] = 1.0  # a white left quarter: cropped away by "center", squashed by "none"
    centre, squashed = clip_preprocess(image, 28, crop=True), clip_preprocess(image, 28, crop=False)
    assert centre.shape == squashed.shape == (1, 3, 28, 28)
    assert centre[..., :4].max() < squashed[..., :4].min()


def test_a_file_without_a_vision_tower_is_a_clear_error(manager, tmp_path):
    path = write_tiny_checkpoint(tmp_path / "sd1.safetensors", "sd1", include_text=False)
    with pytest.raises(ClipVisionError, match="no CLIP vision model"):
        load_clip_vision(path, manager)


def diffusers_noised_embeds(embeds, level, noise, mean, std):
    """diffusers' StableUnCLIPImg2ImgPipeline.noise_image_embeddings on its own normaliser and scheduler."""
    from diffusers import DDPMScheduler, StableUnCLIPImg2ImgPipeline
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
        StableUnCLIPImageNormalizer,
    )

    normalizer = StableUnCLIPImageNormalizer(embedding_dim=embeds.shape[-1])
    normalizer.load_state_dict({"mean": mean.reshape(1, -1), "std": std.reshape(1, -1)})
    owner = SimpleNamespace(image_normalizer=normalizer,
                            image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"))
    with torch.no_grad():
        return StableUnCLIPImg2ImgPipeline.noise_image_embeddings(owner, embeds, level, noise=noise)


def seeded_noise(shape) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(UNCLIP_SEED))


def test_unclip_unet_call_equals_diffusers(manager, tmp_path):
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    path = write_tiny_unclip_checkpoint(tmp_path / "unclip.safetensors")
    loaded = load_checkpoint(path, manager)
    assert (loaded.info.family, loaded.info.prediction) == ("sd2", "v_prediction")
    vision = load_clip_vision(path, manager)
    image = torch.rand(1, 40, 32, 3, generator=torch.Generator().manual_seed(5))
    output = vision.encode_image(image)
    cond = add_unclip_conditioning([[torch.zeros(1, 77, 32), {}]], output, strength=1.0, noise_augmentation=0.25)
    y = loaded.model.encode_adm(cond[0][1], 2)

    state, _ = read_state_dict(path)
    mean, std = state["noise_augmentor.data_mean"], state["noise_augmentor.data_std"]
    class_labels = diffusers_noised_embeds(output.image_embeds, 250, seeded_noise((1, EMBED)), mean, std)
    assert torch.allclose(y, class_labels.expand(2, -1), atol=1e-5)

    config = diffusers_unet_config(loaded.info.unet)
    for key in ("addition_embed_type", "addition_time_embed_dim"):
        config.pop(key)
    config["class_embed_type"] = "projection"
    reference = UNet2DConditionModel(**config).eval()
    reference.load_state_dict(convert_ldm_unet_checkpoint(dict(state), config), strict=True)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 8, 8, generator=generator)
    t = torch.tensor([999.0, 321.0])
    context = torch.randn(2, 77, 32, generator=generator)
    ours = loaded.model.apply_model(x, t, context, y=y)
    with torch.no_grad():
        theirs = reference(x, t, encoder_hidden_states=context, class_labels=class_labels.expand(2, -1)).sample
    assert ours.abs().max() > 1e-3
    assert (ours - theirs).abs().max() <= 1e-4
    without = loaded.model.apply_model(x, t, context, y=loaded.model.encode_adm({}, 2))
    assert (ours - without).abs().max() > 1e-4  # the image embedding reaches the UNet


def test_sdxl_revision_pools_the_image_embeds(manager, tmp_path):
    model = load_checkpoint(write_tiny_checkpoint(tmp_path / "xl.safetensors", "sdxl", include_text=False),
                            manager, load_clip=False, load_vae=False).model
    vision = load_clip_vision(write_tiny_clip_vision(tmp_path / "g.safetensors", projection_dim=64), manager)
    output = vision.encode_image(torch.rand(1, 28, 28, 3, generator=torch.Generator().manual_seed(2)))
    text = torch.randn(1, 64)
    cond = add_unclip_conditioning([[torch.zeros(1, 77, 96), {"pooled_output": text}]], output, 0.7, 0.0)
    y = model.encode_adm(cond[0][1], 1, 1024, 1024)
    expected = 0.7 * diffusers_noised_embeds(output.image_embeds, 0, seeded_noise((1, 64)), torch.zeros(64),
                                             torch.ones(64))[:, :64]
    assert torch.allclose(y[:, :64], expected, atol=1e-5)
    plain = model.encode_adm({"pooled_output": text}, 1, 1024, 1024)
    assert torch.equal(y[:, 64:], plain[:, 64:])  # size embeddings untouched
    assert add_unclip_conditioning(cond, output, 0.0, 0.5) is cond  # strength 0 changes nothing
