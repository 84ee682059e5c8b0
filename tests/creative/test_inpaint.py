"""The optional diffusers inpainting back-end: clear errors always; a tiny random pipeline when diffusers is there."""

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from genads.cli import main
from genads.creative.banner import compose, place_product
from genads.creative.fixtures import write_fixtures
from genads.creative.inpaint import (
    InpaintBackground,
    InpaintConfig,
    MissingDependencyError,
    colour_name,
    load_inpaint_pipeline,
    repaint_mask,
    style_prompt,
    work_size,
)
from genads.creative.style import Style

STYLE = Style(top=(240, 150, 190), bottom=(20, 30, 90), accent=(240, 130, 30), texture_strength=0.1)
WORDS = ["product", "advertisement", "background", "gradient", "to", "accents", "subtle", "striped", "texture",
         "smooth", "clean", "surface", "soft", "studio", "lighting", "no", "text", "pink", "navy", "orange"]


def cutout(size: int = 20) -> Image.Image:
    """An RGBA disc with a colour ramp (distinct opaque pixels) on transparency."""
    yy, xx = np.mgrid[0:size, 0:size]
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., 0] = 10 * xx
    rgba[..., 1] = 10 * yy
    rgba[..., 2] = 77
    rgba[..., 3] = np.where((xx - size / 2 + 0.5) ** 2 + (yy - size / 2 + 0.5) ** 2 <= (size / 2) ** 2, 255, 0)
    return Image.fromarray(rgba, "RGBA")


def fake_model_dir(path):
    path.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": "StableDiffusionInpaintPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"], "safety_checker": [None, None]}
    (path / "model_index.json").write_text(json.dumps(index))
    for name in ("unet", "vae"):
        (path / name).mkdir(exist_ok=True)
    return path


# --- errors and helpers: no diffusers needed ---------------------------------------------------

def test_missing_folder_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_inpaint_pipeline(tmp_path / "nowhere")


def test_incomplete_folder_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model_index\.json"):
        load_inpaint_pipeline(tmp_path)
    model = fake_model_dir(tmp_path / "m")
    (model / "vae").rmdir()
    with pytest.raises(FileNotFoundError, match=r"m is incomplete.*vae"):
        load_inpaint_pipeline(model)


def test_missing_diffusers_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers -> ImportError
    with pytest.raises(MissingDependencyError, match="'diffusers'"):
        load_inpaint_pipeline(fake_model_dir(tmp_path / "m"))


def test_cli_inpaint_errors(tmp_path, capsys, monkeypatch):
    records = write_fixtures(tmp_path / "fx", n_users=1, n_history=2)
    args = ["creative", "generate", "--records", str(records), "--out", str(tmp_path / "o"), "--quiet",
            "--background", "inpaint"]
    assert main(args) == 2
    assert "--inpaint-model" in capsys.readouterr().err
    assert main([*args, "--inpaint-model", str(tmp_path / "no_model")]) == 2
    assert "no_model" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "diffusers", None)
    assert main([*args, "--inpaint-model", str(fake_model_dir(tmp_path / "m"))]) == 2
    assert "'diffusers'" in capsys.readouterr().err


def test_config_validation_names_field():
    for kw, field in [({"steps": 0}, "steps"), ({"strength": 0.0}, "strength"), ({"resolution": 32}, "resolution"),
                      ({"guidance_scale": -1.0}, "guidance_scale")]:
        with pytest.raises(ValueError, match=field):
            InpaintConfig(**kw)


def test_prompt_uses_palette_words():
    assert colour_name((250, 240, 240)) == "white" and colour_name((30, 40, 95)) == "navy"
    prompt = style_prompt(STYLE)
    assert "pink to navy gradient" in prompt and "orange accents" in prompt and "striped" in prompt
    assert "smooth" in style_prompt(Style())


def test_work_size_and_mask():
    assert work_size((1200, 628), 512) == (512, 264)
    assert work_size((300, 250), 64) == (64, 64)
    prod = cutout(10)
    mask = np.asarray(repaint_mask((30, 20), prod, (5, 4)))
    alpha = np.asarray(prod)[..., 3]
    assert mask.shape == (20, 30)
    assert (mask[4:14, 5:15] == np.where(alpha > 0, 0, 255)).all()
    assert mask[:4].min() == 255 and mask[:, 15:].min() == 255


# --- a tiny random-weight pipeline, saved and loaded back --------------------------------------

def tiny_tokenizer(folder):
    """A CLIP BPE tokenizer whose vocabulary holds the prompt words (each merged into one token)."""
    from transformers import CLIPTokenizer
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in sorted(set("".join(WORDS))):
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    merges, seen = [], set()
    for w in WORDS:
        toks = [*w[:-1], w[-1] + "</w>"]
        while len(toks) > 1:
            if (toks[0], toks[1]) not in seen:
                merges.append(f"{toks[0]} {toks[1]}")
                seen.add((toks[0], toks[1]))
            toks = [toks[0] + toks[1], *toks[2:]]
            vocab.setdefault(toks[0], len(vocab))
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]) + "\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=32)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("inpaint")
    tok = tiny_tokenizer(root / "tok")
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=9, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, norm_num_groups=4, attention_head_dim=2)
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32)
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, vocab_size=len(tok) + 4, hidden_size=16,
        intermediate_size=32, num_attention_heads=2, num_hidden_layers=2, max_position_embeddings=32, projection_dim=16))
    scheduler = diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                        clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = diffusers.StableDiffusionInpaintPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tok,
                                                    scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                                    requires_safety_checker=False)
    pipe.save_pretrained(root / "model")
    return root / "model"


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


FAST = InpaintConfig(steps=2, resolution=64, seed=3)


def test_loads_from_folder_and_keeps_product_pixels(tiny_model, one_thread):
    pipe = load_inpaint_pipeline(tiny_model)
    assert type(pipe).__name__ == "StableDiffusionInpaintPipeline"
    paint = InpaintBackground(pipe, FAST)
    prod = cutout(20)
    bg = paint(STYLE, (64, 64), prod, (22, 30))
    assert bg.size == (64, 64) and bg.mode == "RGB"
    alpha = np.asarray(prod)[..., 3] == 255
    got = np.asarray(bg)[30:50, 22:42]
    assert (got[alpha] == np.asarray(prod)[..., :3][alpha]).all()
    assert np.array_equal(np.asarray(paint(STYLE, (64, 64), prod, (22, 30))), np.asarray(bg))  # seeded
    other = InpaintBackground(pipe, InpaintConfig(steps=2, resolution=64, seed=4))(STYLE, (64, 64), prod, (22, 30))
    assert not np.array_equal(np.asarray(other), np.asarray(bg))


def test_compose_with_inpaint_background(tiny_model, one_thread):
    paint = InpaintBackground.from_dir(tiny_model, InpaintConfig(steps=1, resolution=64))
    prod = cutout(20)
    banner = compose(prod, "Light trail shoe", STYLE, (120, 100), background=paint)
    assert banner.png.size == (120, 100)
    placed, (x, y) = place_product(prod, tuple(banner.layout["layers"][1]["box"]))
    alpha = np.asarray(placed)[..., 3] == 255
    got = np.asarray(banner.png)[y:y + placed.height, x:x + placed.width]
    assert (got[alpha] == np.asarray(placed)[..., :3][alpha]).all()


def test_corrupt_component_is_a_clear_error(tiny_model, tmp_path):
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    for f in (broken / "unet").iterdir():
        if f.suffix != ".json":
            f.unlink()
    with pytest.raises(ValueError, match="broken"):
        load_inpaint_pipeline(broken)


def test_cli_generate_with_inpaint(tiny_model, tmp_path):
    records = write_fixtures(tmp_path / "fx", n_users=1, seed=1, n_history=3)
    out = tmp_path / "out"
    assert main(["creative", "generate", "--records", str(records), "--out", str(out), "--sizes", "120x100",
                 "--background", "inpaint", "--inpaint-model", str(tiny_model), "--inpaint-steps", "1",
                 "--inpaint-resolution", "64", "--quiet"]) == 0
    folder = next(p for p in out.iterdir() if p.is_dir())
    assert Image.open(folder / "ad.png").size == (120, 100) and (folder / "ad.svg").stat().st_size > 0
